import hashlib
import http.server
import tarfile
import threading
from pathlib import Path

import pytest

from stages.lib import dataset, synthetic
from stages.lib.params import SyntheticParams
from tests.integration.conftest import run_stage, set_params


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A generated archive in the real `cifar-100-python/` layout."""
    root = tmp_path_factory.mktemp("archive")
    dataset.write_raw(root / "src", synthetic.generate(SyntheticParams(2, 1, 5.0, 3)))
    path = root / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root / "src" / "cifar-100-python", arcname="cifar-100-python")
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    claimed = 0  # Content-Length announced; more than len(body) simulates a cut connection

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(self.claimed or len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local stand-in for the CIFAR-100 URL on 127.0.0.1; shut down after the test."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def _serve(server, body: bytes, claimed: int = 0) -> str:
    _Handler.body, _Handler.claimed = body, claimed
    return f"http://127.0.0.1:{server.server_address[1]}/cifar-100-python.tar.gz"


def test_synthetic_source_writes_the_official_layout(project):
    assert run_stage("ingest") == 0
    ds = dataset.read_raw(project / "data" / "raw")
    assert ds.train.images.shape == (1200, 3072) and len(ds.fine_names) == 100


def test_archive_with_right_md5_is_unpacked(project, archive):
    set_params(project, data={"source": "archive", "archive": {"path": str(archive), "md5": _md5(archive)}})
    assert run_stage("ingest") == 0
    assert dataset.read_raw(project / "data" / "raw").test.images.shape == (100, 3072)


def test_archive_with_wrong_md5_fails_and_leaves_no_output(project, archive, capsys):
    (project / "data" / "raw").mkdir(parents=True)  # a stale output must not survive either
    set_params(project, data={"source": "archive", "archive": {"path": str(archive), "md5": "0" * 32}})
    assert run_stage("ingest") == 1
    err = capsys.readouterr().err
    assert f"md5 is {_md5(archive)}, expected {'0' * 32} (params.yaml data.archive.md5)" in err
    assert not (project / "data" / "raw").exists()


def test_missing_archive_is_named(project):
    set_params(project, data={"source": "archive", "archive": {"path": "nope.tar.gz", "md5": "0" * 32}})
    assert run_stage("ingest") == 1
    assert not (project / "data" / "raw").exists()


def test_download_with_right_md5(project, archive, server):
    url = _serve(server, archive.read_bytes())
    set_params(project, data={"source": "cifar100", "download": {"url": url, "md5": _md5(archive)}})
    assert run_stage("ingest") == 0
    assert sorted(p.name for p in (project / "data" / "raw").iterdir()) == ["cifar-100-python"]


def test_download_with_wrong_md5_fails_cleanly(project, archive, server, capsys):
    url = _serve(server, archive.read_bytes())
    set_params(project, data={"source": "cifar100", "download": {"url": url, "md5": "f" * 32}})
    assert run_stage("ingest") == 1
    assert "(params.yaml data.download.md5)" in capsys.readouterr().err
    assert not (project / "data" / "raw").exists()


def test_cut_off_download_fails_cleanly(project, archive, server, capsys):
    body = archive.read_bytes()
    url = _serve(server, body[: len(body) // 2], claimed=len(body))
    set_params(project, data={"source": "cifar100", "download": {"url": url, "md5": _md5(archive)}})
    assert run_stage("ingest") == 1
    err = capsys.readouterr().err
    assert url in err or "md5 is" in err
    assert not (project / "data" / "raw").exists()


def test_truncated_archive_with_the_full_files_md5_fails_cleanly(project, archive, server, capsys):
    body = archive.read_bytes()
    url = _serve(server, body[: len(body) // 2])
    set_params(project, data={"source": "cifar100", "download": {"url": url, "md5": _md5(archive)}})
    assert run_stage("ingest") == 1
    assert "md5 is" in capsys.readouterr().err
    assert not (project / "data" / "raw").exists()
