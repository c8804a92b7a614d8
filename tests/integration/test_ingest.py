import hashlib
import http.server
import io
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from stages.lib import cifar_pickles, dataset, synthetic
from stages.lib.params import SyntheticParams
from tests.integration.conftest import run_stage, set_params

SOURCE = SyntheticParams(train_per_class=2, test_per_class=1, noise=5.0, seed=3)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A generated archive in the real `cifar-100-python/` layout."""
    root = tmp_path_factory.mktemp("archive")
    cifar_pickles.write_pickles(root / "src", synthetic.generate(SOURCE))
    path = root / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root / "src" / "cifar-100-python", arcname="cifar-100-python")
    return path


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Server(http.server.ThreadingHTTPServer):
    """Serves one response: `body` with status and an announced length that may exceed the body."""

    body, status, claimed = b"", 200, 0

    def handle_error(self, request, client_address):
        pass  # the client hanging up on a cut response is expected here


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        if srv.status != 200:
            self.send_error(srv.status)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(srv.claimed or len(srv.body)))
        self.end_headers()
        self.wfile.write(srv.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """A local stand-in for the CIFAR-100 URL on 127.0.0.1 (port 0); shut down when the test ends."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def configure(body: bytes, status: int = 200, claimed: int = 0) -> str:
        httpd.body, httpd.status, httpd.claimed = body, status, claimed
        return f"http://127.0.0.1:{httpd.server_address[1]}/cifar-100-python.tar.gz"

    yield configure
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


def _content_sha256(tmp: Path) -> str:
    """The content fingerprint of SOURCE in the canonical raw format."""
    tmp.mkdir(parents=True, exist_ok=True)
    dataset.write_raw(tmp, synthetic.generate(SOURCE))
    return dataset.content_sha256(tmp)


def _download(project, url: str, md5: str, content: str = "0" * 64) -> None:
    download = {"url": url, "md5": md5, "content_sha256": content}
    set_params(project, data={"source": "cifar100", "download": download})


def _fails_cleanly(project, capsys) -> str:
    """Run ingest over a stale output; it must fail and leave no data/raw at all."""
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "train_images.npy").write_bytes(b"stale")
    assert run_stage("ingest") == 1
    assert not (project / "data" / "raw").exists()
    assert [p.name for p in (project / "data").iterdir()] == []  # no scratch dir survives
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.splitlines()[-1]  # after any download progress bar
    assert last.startswith("ingest: error: ")
    return last


def test_synthetic_source_writes_the_official_layout(project, capsys):
    assert run_stage("ingest") == 0
    ds = dataset.read_raw(project / "data" / "raw")
    assert ds.train.images.shape == (1200, 3072) and ds.test.images.shape == (400, 3072)
    assert "ingest: synthetic -> data/raw" in capsys.readouterr().out


def test_synthetic_ingest_is_byte_reproducible(project):
    assert run_stage("ingest") == 0
    first = {p.name: p.read_bytes() for p in (project / "data" / "raw").iterdir()}
    assert sorted(first) == sorted(dataset.raw_files())
    assert run_stage("ingest") == 0
    again = {p.name: p.read_bytes() for p in (project / "data" / "raw").iterdir()}
    assert first == again


def test_archive_with_right_md5_is_unpacked(project, archive):
    set_params(
        project, data={"source": "archive", "archive": {"path": str(archive), "md5": _md5(archive.read_bytes())}}
    )
    assert run_stage("ingest") == 0
    got = dataset.read_raw(project / "data" / "raw")
    np.testing.assert_array_equal(got.test.images, synthetic.generate(SOURCE).test.images)


@pytest.mark.parametrize("has_data_filter", [True, False], ids=["data-filter", "python-before-3.11.4"])
def test_members_outside_the_archive_root_are_refused(project, archive, capsys, monkeypatch, has_data_filter):
    """The stage images run Python 3.11.2, whose tarfile has no `filter`: the stand-in refuses too."""
    if not has_data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        test_archive_with_right_md5_is_unpacked(project, archive)  # a good archive still unpacks
        shutil.rmtree(project / "data" / "raw")
    evil = project / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(archive, arcname="cifar-100-python/../../outside.tar.gz")
    md5 = _md5(evil.read_bytes())
    set_params(project, data={"source": "archive", "archive": {"path": str(evil), "md5": md5}})
    assert "cannot be unpacked" in _fails_cleanly(project, capsys)
    assert not (project / "outside.tar.gz").exists() and not (project.parent / "outside.tar.gz").exists()


def test_archive_with_wrong_md5_fails_and_leaves_no_output(project, archive, capsys):
    set_params(project, data={"source": "archive", "archive": {"path": str(archive), "md5": "0" * 32}})
    err = _fails_cleanly(project, capsys)
    assert f"{archive}: md5 is {_md5(archive.read_bytes())}, expected {'0' * 32} (params.yaml data.archive.md5)" in err


def test_missing_archive_is_named(project, capsys):
    set_params(project, data={"source": "archive", "archive": {"path": "nope.tar.gz", "md5": "0" * 32}})
    err = _fails_cleanly(project, capsys)
    assert "nope.tar.gz: file not found (params.yaml data.archive.path)" in err


def test_a_directory_as_archive_path_is_called_a_directory(project, capsys):
    (project / "unpacked").mkdir()
    set_params(project, data={"source": "archive", "archive": {"path": "unpacked", "md5": "0" * 32}})
    err = _fails_cleanly(project, capsys)
    assert "unpacked: is a directory, not a .tar.gz file (params.yaml data.archive.path)" in err


def test_upper_case_md5_in_params_matches(project, archive):
    md5 = _md5(archive.read_bytes()).upper()
    set_params(project, data={"source": "archive", "archive": {"path": str(archive), "md5": md5}})
    assert run_stage("ingest") == 0


def test_archive_that_is_not_a_tarball_is_named(project, capsys):
    junk = project / "junk.tar.gz"
    junk.write_bytes(b"definitely not gzip")
    set_params(project, data={"source": "archive", "archive": {"path": str(junk), "md5": _md5(junk.read_bytes())}})
    err = _fails_cleanly(project, capsys)
    assert f"{junk}: cannot be unpacked" in err


def test_archive_without_the_cifar_directory_is_named(project, capsys):
    wrong = project / "wrong.tar.gz"
    with tarfile.open(wrong, "w:gz") as tar:
        info = tarfile.TarInfo("something-else/readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    set_params(project, data={"source": "archive", "archive": {"path": str(wrong), "md5": _md5(wrong.read_bytes())}})
    err = _fails_cleanly(project, capsys)
    assert "archive: archive holds no cifar-100-python/ directory" in err


def test_download_with_right_md5(project, archive, serve, tmp_path):
    body = archive.read_bytes()
    _download(project, serve(body), _md5(body), _content_sha256(tmp_path / "c"))
    assert run_stage("ingest") == 0
    assert sorted(p.name for p in (project / "data" / "raw").iterdir()) == sorted(dataset.raw_files())  # no scratch
    got = dataset.read_raw(project / "data" / "raw")
    np.testing.assert_array_equal(got.train.images, synthetic.generate(SOURCE).train.images)


def test_download_with_wrong_md5_fails_cleanly(project, archive, serve, capsys):
    body = archive.read_bytes()
    _download(project, serve(body), "f" * 32)
    err = _fails_cleanly(project, capsys)
    assert f"md5 is {_md5(body)}, expected {'f' * 32} (params.yaml data.download.md5)" in err


def test_cut_off_download_fails_cleanly(project, archive, serve, capsys):
    """The server announces the whole file but the connection ends halfway."""
    body = archive.read_bytes()
    half = body[: len(body) // 2]
    _download(project, serve(half, claimed=len(body)), _md5(body))
    err = _fails_cleanly(project, capsys)
    # urllib returns the short body without complaint; the md5 check is what catches it.
    assert f"cifar-100-python.tar.gz: md5 is {_md5(half)}, expected {_md5(body)} (params.yaml data.download.md5)" in err


def test_truncated_archive_with_the_full_files_md5_fails_cleanly(project, archive, serve, capsys):
    body = archive.read_bytes()
    cut = body[: len(body) // 3]
    _download(project, serve(cut), _md5(body))
    err = _fails_cleanly(project, capsys)
    assert f"md5 is {_md5(cut)}, expected {_md5(body)} (params.yaml data.download.md5)" in err


def test_http_error_names_the_url(project, serve, capsys):
    url = serve(b"", status=404)
    _download(project, url, "0" * 32)
    err = _fails_cleanly(project, capsys)
    assert f"download of {url} failed" in err and "404" in err


def test_unreachable_server_names_the_url(project, capsys):
    url = "http://127.0.0.1:9/cifar-100-python.tar.gz"  # discard port: nothing listens
    _download(project, url, "0" * 32)
    err = _fails_cleanly(project, capsys)
    assert f"download of {url} failed" in err and "Connection refused" in err


def _stored_gzip(archive: Path) -> bytes:
    """The archive's tar, gzipped with stored (uncompressed) deflate blocks: a changed byte
    inside a block still inflates, so only the gzip CRC can tell."""
    import gzip

    return gzip.compress(gzip.decompress(archive.read_bytes()), compresslevel=0, mtime=0)


def test_corrupt_archive_whose_md5_matches_fails_on_the_gzip_crc(project, archive, capsys):
    import zlib

    good = _stored_gzip(archive)
    body = bytearray(good)
    body[len(body) // 2] ^= 0xFF  # inside the train pickle's pixels, away from the block headers
    inflate = lambda b: zlib.decompressobj(-zlib.MAX_WBITS).decompress(b[10:])  # noqa: E731 (past the gzip header)
    changed, original = inflate(bytes(body)), inflate(good)
    assert len(changed) == len(original) and changed != original  # deflate alone sees nothing wrong
    bad = project / "corrupt.tar.gz"
    bad.write_bytes(bytes(body))
    set_params(project, data={"source": "archive", "archive": {"path": str(bad), "md5": _md5(bytes(body))}})
    err = _fails_cleanly(project, capsys)
    assert f"{bad}: cannot be unpacked: CRC check failed" in err


def test_stored_gzip_archive_with_the_right_crc_is_unpacked(project, archive):
    good = project / "stored.tar.gz"
    good.write_bytes(_stored_gzip(archive))
    set_params(project, data={"source": "archive", "archive": {"path": str(good), "md5": _md5(good.read_bytes())}})
    assert run_stage("ingest") == 0
    np.testing.assert_array_equal(dataset.read_raw("data/raw").train.images, synthetic.generate(SOURCE).train.images)


def _repacked(archive: Path, dest: Path, protocol: int, compress: str) -> Path:
    """The same content in other bytes: pickles at another protocol, another compressor."""
    import pickle

    tmp = dest.with_suffix(".d")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    for name in ("train", "test", "meta"):
        path = tmp / "cifar-100-python" / name
        path.write_bytes(pickle.dumps(pickle.loads(path.read_bytes()), protocol=protocol))
    with tarfile.open(dest, f"w:{compress}") as tar:
        tar.add(tmp / "cifar-100-python", arcname="cifar-100-python")
    return dest


def test_two_archives_with_the_same_content_give_the_same_raw_bytes(project, archive, tmp_path):
    other = _repacked(archive, tmp_path / "other.tar.bz2", protocol=2, compress="bz2")
    assert _md5(other.read_bytes()) != _md5(archive.read_bytes())
    outputs = []
    for path in (archive, other):
        set_params(project, data={"source": "archive", "archive": {"path": str(path), "md5": _md5(path.read_bytes())}})
        assert run_stage("ingest") == 0
        outputs.append({p.name: p.read_bytes() for p in (project / "data" / "raw").iterdir()})
    assert outputs[0] == outputs[1]


def test_a_stand_in_copy_with_the_same_content_replaces_the_download(project, archive, tmp_path, monkeypatch, capsys):
    other = _repacked(archive, tmp_path / "copy.tar.gz", protocol=2, compress="gz")
    content = _content_sha256(tmp_path / "c")
    _download(project, "http://127.0.0.1:9/never-fetched.tar.gz", "0" * 32, content)  # nothing listens there
    monkeypatch.setenv("CIFAR100_ARCHIVE", str(other))
    assert run_stage("ingest") == 0
    assert f"(content sha256 {content})" in capsys.readouterr().out
    assert dataset.content_sha256(project / "data" / "raw") == content


def test_a_stand_in_copy_with_other_content_fails_in_one_line(project, archive, monkeypatch, capsys):
    _download(project, "http://127.0.0.1:9/never-fetched.tar.gz", "0" * 32, "a" * 64)
    monkeypatch.setenv("CIFAR100_ARCHIVE", str(archive))
    err = _fails_cleanly(project, capsys)
    assert f"CIFAR100_ARCHIVE={archive}: content sha256 is " in err
    assert f"expected {'a' * 64} (params.yaml data.download.content_sha256)" in err
