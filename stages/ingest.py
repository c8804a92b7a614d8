"""ingest: put CIFAR-100 under the output dir in its canonical, content-addressed format.

Sources (params `data.source`): `cifar100` downloads the official archive with
torchvision's downloader (progress bar), checked against the md5 in params
while it unpacks; `archive` takes a local tarball, checked against its md5;
`synthetic` generates a learnable stand-in. The archive's pickles become the
canonical arrays of stages/lib/dataset.py, so the output depends only on the
content. For `cifar100`, a local copy of the official archive named by the
CIFAR100_ARCHIVE environment setting stands in for the download: its bytes may
differ (another compressor, pickle protocol), so its content is checked instead,
against `data.download.content_sha256`, and the record stays true. Whatever
fails leaves no output dir behind. torch is imported only to download.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.client
import lzma
import os
import tarfile
import urllib.error
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stages.lib import cifar_pickles, cli, dataset, fsio, params
from stages.lib.dataset import ARCHIVE_DIR

ARCHIVE_ENV = "CIFAR100_ARCHIVE"  # a local copy of the official archive, used instead of the download


class IngestError(cli.PipelineError):
    pass


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


# Magic bytes -> the stdlib reader that checks the stream's own checksum (gzip CRC32
# and length, bzip2 block CRCs, xz check) when read to its end; tarfile's stream mode
# inflates gzip itself and never checks the CRC.
_DECOMPRESSORS = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)


def _extract_all(tar: tarfile.TarFile, dest: Path) -> None:
    """tarfile's `data` filter; where this Python lacks it (before 3.11.4, as the stage images'
    3.11.2) a stricter stand-in: regular files and folders inside dest, nothing else."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in tar:
        if not (member.isfile() or member.isdir()) or not (root / member.name).resolve().is_relative_to(root):
            raise tarfile.TarError(f"member {member.name!r} is not a file or folder inside the archive")
        tar.extract(member, dest, set_attrs=False)


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a (compressed) tarball in one streaming pass, then read the compressed
    stream to its end so a corrupt member that tar never looks at still fails."""
    with open(archive, "rb") as raw:
        magic = raw.read(6)
        raw.seek(0)
        opener = next((cls for prefix, cls in _DECOMPRESSORS if magic.startswith(prefix)), None)
        stream = opener(raw) if opener else raw
        # copybufsize: a TarFile keyword since Python 3.8 that typeshed's tarfile.open overloads lack.
        with stream, tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20, copybufsize=1 << 20) as tar:  # type: ignore[call-overload]
            _extract_all(tar, dest)
            while stream.read(1 << 20):  # the checksum is verified at the end of the stream
                pass


def _unpack(archive: Path, md5: str | None, key: str, dest: Path, name: str | None = None) -> None:
    """Extract `archive` into dest and verify its md5 (named by params key) meanwhile.

    md5=None: no byte check (a stand-in copy, whose content is checked instead).
    The md5 runs on a second thread (hashlib drops the GIL) while the main one
    inflates and writes, so the check costs no wall time; the scratch dir it
    extracts into is deleted if the sum does not match, and the `data` filter
    keeps members inside it.
    """
    if archive.is_dir():
        raise IngestError(f"{archive}: is a directory, not a .tar.gz file (params.yaml {key}.path)")
    if not archive.is_file():
        raise IngestError(f"{archive}: file not found (params.yaml {key}.path)")
    problem = None
    with ThreadPoolExecutor(1) as pool:
        digest = pool.submit(_md5, archive)
        try:
            _extract(archive, dest)
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
            problem = exc
        name = name or str(archive)  # a download is named by its URL, not its scratch path
        try:
            actual = digest.result()
        except OSError as exc:
            raise IngestError(f"{name}: cannot be read: {exc.strerror or exc}") from None
    if md5 is not None and actual != md5:
        raise IngestError(f"{name}: md5 is {actual}, expected {md5} (params.yaml {key}.md5)")
    if problem is not None:
        raise IngestError(f"{name}: cannot be unpacked: {problem}")


def _download(cfg: params.DownloadParams, dest: Path) -> None:
    from torchvision.datasets.utils import download_url

    name = cfg.url.rsplit("/", 1)[-1] or "cifar-100-python.tar.gz"
    target = dest / ".download" / name
    try:
        # md5=None: the check below names the expected and actual sums.
        download_url(cfg.url, str(target.parent), name, md5=None)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise IngestError(f"download of {cfg.url} failed: {exc!r}") from None
    _unpack(target, cfg.md5, "data.download", dest, name=f"download of {cfg.url}")
    fsio.remove(target.parent)


def _fetch(data: params.DataParams, dest: Path, environ) -> str | None:
    """Unpack the source archive into dest; return the stand-in's name when one was used."""
    stand_in = environ.get(ARCHIVE_ENV) if data.source == "cifar100" else None
    if stand_in:
        _unpack(Path(stand_in), None, ARCHIVE_ENV, dest, name=f"{ARCHIVE_ENV}={stand_in}")
    elif data.source == "archive":
        _unpack(Path(data.archive.path), data.archive.md5, "data.archive", dest)
    else:
        _download(data.download, dest)
    if not (dest / ARCHIVE_DIR).is_dir():
        raise IngestError(f"{stand_in or data.source}: archive holds no {ARCHIVE_DIR}/ directory")
    return stand_in


def ingest(data: params.DataParams, out: Path, environ=None) -> str:
    """Write the canonical dataset to out; return its content sha256."""
    environ = os.environ if environ is None else environ
    with fsio.atomic_dir(out) as scratch:
        if data.source == "synthetic":
            from stages.lib import synthetic

            dataset.write_raw(scratch, synthetic.generate(data.synthetic))
            return dataset.content_sha256(scratch)
        unpacked = scratch / ".unpacked"
        stand_in = _fetch(data, unpacked, environ)
        dataset.write_raw(scratch, cifar_pickles.read_pickles(unpacked))
        fsio.remove(unpacked)
        digest = dataset.content_sha256(scratch)
        expected = data.download.content_sha256
        if data.source == "cifar100" and digest != expected:
            where = f"{ARCHIVE_ENV}={stand_in}" if stand_in else f"download of {data.download.url}"
            raise IngestError(
                f"{where}: content sha256 is {digest}, expected {expected} "
                "(params.yaml data.download.content_sha256): not the official CIFAR-100 content"
            )
        return digest


def _main(argv) -> None:
    args = cli.parser(__doc__.splitlines()[0], "out").parse_args(argv)
    cfg = params.load(args.params)
    fsio.check_writable(args.out)
    digest = ingest(cfg.data, Path(args.out))
    print(f"ingest: {cfg.data.source} -> {args.out} (content sha256 {digest})")


def main(argv=None) -> int:
    return cli.run("ingest", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
