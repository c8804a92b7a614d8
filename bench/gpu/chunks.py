"""Send a file larger than the GPU host's transfer limit in parts, and rebuild it there.

The device tool carries at most 64 MiB of working tree per call, and the CIFAR-100
archive is about 161 MiB, so it travels as parts over several calls. `split` cuts a
file into parts of at most --size bytes and writes a manifest in `md5sum -c` format:
one line per part, then the whole file's line. `join` checks every part, concatenates
them in order and checks the whole file's md5, so a lost or corrupt part is named
before any time is spent on a half archive. Standard library only: the GPU host's
python3 runs it before anything is installed there.

    python3 -m bench.gpu.chunks split ARCHIVE DIR [--size 54M]
    python3 -m bench.gpu.chunks check MANIFEST [--search DIR ...]   # exit 3 while parts are missing
    python3 -m bench.gpu.chunks join MANIFEST OUT [--search DIR ...]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

MANIFEST = "MANIFEST.md5"
MIB = 1 << 20
BLOCK = 4 * MIB  # read size for hashing and copying


class ChunkError(Exception):
    """A part or the rebuilt file is missing or does not match the manifest."""


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def parse_size(text: str) -> int:
    """'54M' -> 54 MiB in bytes; plain digits are bytes; K, M, G are binary units."""
    units = {"K": 1 << 10, "M": MIB, "G": 1 << 30}
    scale = units.get(text[-1:].upper(), 1)
    digits = text[:-1] if text[-1:].upper() in units else text
    if not digits.isdigit() or int(digits) == 0:
        raise ChunkError(f"--size {text!r}: expected a positive size such as 54M or 1048576")
    return int(digits) * scale


def split(src: Path, out: Path, size: int) -> list[Path]:
    """Cut src into out/<name>.part-NN of at most `size` bytes; write out/MANIFEST.md5; return the parts."""
    out.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    with open(src, "rb") as f:
        while data := f.read(size):
            part = out / f"{src.name}.part-{len(parts):02d}"
            part.write_bytes(data)
            parts.append(part)
    lines = [f"{md5_of(p)}  {p.name}" for p in parts] + [f"{md5_of(src)}  {src.name}"]
    (out / MANIFEST).write_text("\n".join(lines) + "\n")
    return parts


def read_manifest(path: Path) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    """([(md5, part name), ...] in order, (md5, whole file name)) from a manifest `split` wrote."""
    try:
        rows = [line.split(None, 1) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise ChunkError(f"{path}: manifest not found (run bench/gpu/pack.sh and carry it)") from None
    if len(rows) < 2 or any(len(r) != 2 for r in rows):
        raise ChunkError(f"{path}: expected 'md5  name' lines, parts first and the whole file last")
    return [(m, n.strip()) for m, n in rows[:-1]], (rows[-1][0], rows[-1][1].strip())


def find_part(name: str, dirs: list[Path]) -> Path | None:
    return next((d / name for d in dirs if (d / name).is_file()), None)


def missing_parts(manifest: Path, dirs: list[Path]) -> list[str]:
    """Names of the parts not found in any of dirs (an empty list: ready to join)."""
    parts, _ = read_manifest(manifest)
    return [name for _, name in parts if find_part(name, dirs) is None]


def join(manifest: Path, dirs: list[Path], out_dir: Path) -> Path:
    """Check each part, concatenate them into out_dir/<whole name>, check the whole; return its path."""
    parts, (whole_md5, whole_name) = read_manifest(manifest)
    missing = missing_parts(manifest, dirs)
    if missing:
        where = ", ".join(str(d) for d in dirs)
        raise ChunkError(f"{manifest}: parts {', '.join(missing)} not found in {where}; carry them first")
    for expected, name in parts:
        path = find_part(name, dirs)
        if md5_of(path) != expected:
            raise ChunkError(f"{path}: md5 {md5_of(path)} differs from the manifest's {expected}; carry it again")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / whole_name
    with open(target, "wb") as dst:
        for _, name in parts:
            with open(find_part(name, dirs), "rb") as src:
                shutil.copyfileobj(src, dst, BLOCK)
    if md5_of(target) != whole_md5:
        raise ChunkError(f"{target}: md5 {md5_of(target)} differs from the manifest's {whole_md5}")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="cut a file into parts plus an md5 manifest")
    s.add_argument("src", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--size", default="54M", help="largest part (K, M, G binary units; default 54M)")
    c = sub.add_parser("check", help="say which parts are still missing (exit 3 while any is)")
    j = sub.add_parser("join", help="check the parts, rebuild the file, check it")
    for p in (c, j):
        p.add_argument("manifest", type=Path)
        p.add_argument("--search", type=Path, action="append", default=[], help="folder holding parts (repeatable)")
    j.add_argument("out", type=Path, help="folder to write the rebuilt file into")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except ChunkError as exc:
        print(f"chunks: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "split":
        for part in split(args.src, args.out, parse_size(args.size)):
            print(f"{part} {part.stat().st_size} bytes")
        return 0
    dirs = args.search or [args.manifest.parent]
    if args.cmd == "join":
        print(join(args.manifest, dirs, args.out))
        return 0
    missing = missing_parts(args.manifest, dirs)
    print(f"chunks: missing {', '.join(missing)}" if missing else "chunks: all parts present")
    return 3 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
