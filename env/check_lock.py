"""Which file of each locked package a platform would fetch, and whether the lock (env/*.lock) lists its sha256.

    python env/check_lock.py [--index https://pypi.org/simple] [--glibc 2.35] [--python 3.11]

Reads the index's simple pages (one request per locked package, as `pip install` does), picks
the file pip would choose on Linux x86_64 with that glibc and CPython (the best-ranked compatible
wheel, else the sdist) and prints one JSON line: how many are covered and which are not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import requests
from packaging import tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

LAYERS = ("stages", "serve", "automation", "dev")  # env/<layer>.lock, each holding what its layer adds
LOCKS = [Path(__file__).resolve().parent / f"{layer}.lock" for layer in LAYERS]


def read_lock(text: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, sha256 set) from a pip-compile --generate-hashes file."""
    out: dict[str, tuple[str, set[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if head:
            out[canonicalize_name(head.group(1))] = (head.group(2), set(re.findall(r"sha256:([0-9a-f]{64})", block)))
    return out


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.files: list[tuple[str, str]] = []  # (filename, sha256)

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href") or ""
        if tag == "a" and "#sha256=" in href:
            url, digest = href.split("#sha256=")
            self.files.append((url.rsplit("/", 1)[-1], digest))


def platform_tags(glibc: tuple[int, int], python: tuple[int, int]) -> list[tags.Tag]:
    """Tags of a Linux x86_64 CPython host, best first (pip's order)."""
    plats = [f"manylinux_{glibc[0]}_{m}_x86_64" for m in range(glibc[1], 4, -1)]
    plats += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    interp = f"cp{python[0]}{python[1]}"
    return [*tags.cpython_tags(python, platforms=plats), *tags.compatible_tags(python, interp, plats)]


def choose(files: list[tuple[str, str]], version: str, ranked: dict[tags.Tag, int]) -> tuple[str, str] | None:
    """The (filename, sha256) pip would fetch for `version`: best-ranked compatible wheel, else an sdist."""
    best, sdist = None, None
    for name, digest in files:
        try:
            if name.endswith(".whl"):
                _, ver, _, file_tags = parse_wheel_filename(name)
                rank = min((ranked[t] for t in file_tags if t in ranked), default=None)
                if ver == Version(version) and rank is not None and (best is None or rank < best[0]):
                    best = (rank, name, digest)
            elif parse_sdist_filename(name)[1] == Version(version):
                sdist = (name, digest)
        except (InvalidWheelFilename, ValueError):
            continue
    return best[1:] if best else sdist


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="https://pypi.org/simple")
    ap.add_argument("--glibc", default="2.35")
    ap.add_argument("--python", default="3.11")
    args = ap.parse_args()
    glibc, python = tuple(map(int, args.glibc.split("."))), tuple(map(int, args.python.split(".")))
    ranked: dict[tags.Tag, int] = {}
    for i, tag in enumerate(platform_tags(glibc, python)):
        ranked.setdefault(tag, i)
    verify = os.environ.get("PIP_CERT") or True
    covered, missing, sdists = 0, [], []
    for name, (version, hashes) in sorted(read_lock("\n".join(lock.read_text() for lock in LOCKS)).items()):
        page = requests.get(f"{args.index}/{name}/", timeout=60, verify=verify)
        parser = Links()
        parser.feed(page.text)
        picked = choose(parser.files, version, ranked)
        if picked and not picked[0].endswith(".whl"):
            sdists.append(picked[0])  # built on install: its build deps are fetched unhashed
        if picked and picked[1] in hashes:
            covered += 1
        else:
            missing.append(f"{name}=={version}: {picked[0] if picked else 'no file for this platform'}")
    print(
        json.dumps(
            {
                "index": args.index,
                "glibc": args.glibc,
                "python": args.python,
                "covered": covered,
                "not_covered": missing,
                "sdists": sdists,
            }
        )
    )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
