"""ingest: put CIFAR-100 in its python-version layout under the output dir.

Sources (params `data.source`): `cifar100` downloads the official archive with
torchvision's downloader (progress bar, md5 check); `archive` verifies and
unpacks a local tarball; `synthetic` generates a learnable stand-in. Whatever
fails leaves no output dir behind.
"""
from __future__ import annotations

import http.client
import urllib.error
from pathlib import Path

from stages.lib import cli, fsio, params
from stages.lib.dataset import RAW_DIR


class IngestError(cli.PipelineError):
    pass


def _md5(path: Path) -> str:
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(str(path))


def _unpack(archive: Path, md5: str, key: str, dest: Path) -> None:
    """Verify `archive` against `md5` (named by params key), then extract into dest."""
    from torchvision.datasets.utils import check_integrity, extract_archive

    if not archive.is_file():
        raise IngestError(f"{archive}: file not found (params.yaml {key}.path)")
    if not check_integrity(str(archive), md5):
        raise IngestError(
            f"{archive}: md5 is {_md5(archive)}, expected {md5} (params.yaml {key}.md5)"
        )
    try:
        extract_archive(str(archive), str(dest))
    except Exception as exc:  # tarfile/gzip raise several unrelated types
        raise IngestError(f"{archive}: cannot be unpacked: {exc}") from None


def _download(cfg: params.DownloadParams, dest: Path) -> None:
    from torchvision.datasets.utils import download_url

    name = cfg.url.rsplit("/", 1)[-1] or "cifar-100-python.tar.gz"
    target = dest / ".download" / name
    try:
        # md5=None: the check below names the expected and actual sums.
        download_url(cfg.url, str(target.parent), name, md5=None)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise IngestError(f"download of {cfg.url} failed: {exc!r}") from None
    _unpack(target, cfg.md5, "data.download", dest)
    fsio.remove(target.parent)


def ingest(data: params.DataParams, out: Path) -> None:
    with fsio.atomic_dir(out) as scratch:
        if data.source == "synthetic":
            from stages.lib import dataset, synthetic

            dataset.write_raw(scratch, synthetic.generate(data.synthetic))
        elif data.source == "archive":
            _unpack(Path(data.archive.path), data.archive.md5, "data.archive", scratch)
        else:
            _download(data.download, scratch)
        if not (scratch / RAW_DIR).is_dir():
            raise IngestError(f"{data.source}: archive holds no {RAW_DIR}/ directory")


def _main(argv) -> None:
    args = cli.parser(__doc__.splitlines()[0], "out").parse_args(argv)
    cfg = params.load(args.params)
    ingest(cfg.data, Path(args.out))
    print(f"ingest: {cfg.data.source} -> {args.out}")


def main(argv=None) -> int:
    return cli.run("ingest", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
