"""Read the dependency lock's layers and an environment's `pip freeze`, to compare the two."""

from __future__ import annotations

import re
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
# Tools a fresh venv brings along; they count only where the lock pins them too.
BOOTSTRAP = frozenset({"pip", "setuptools", "wheel"})


def normalize(name: str) -> str:
    """PEP 503 name: `Ruamel.YAML` and `ruamel-yaml` are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """name -> version of every `name==version` line (lock or `pip freeze`); hash and comment lines skipped."""
    found = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def lock_pins(path: Path) -> dict[str, str]:
    return pins(path.read_text())


# env/<layer>.lock, bottom first; each file holds only what its layer adds (env/lock.py).
LAYERS = ("stages", "serve", "automation", "dev")


def layer_pins(env: Path, *layers: str) -> dict[str, str]:
    """name -> version over the given layers' files: what an environment holding them has."""
    out: dict[str, str] = {}
    for layer in layers:
        out.update(lock_pins(env / f"{layer}.lock"))
    return out


def differences(lock: dict[str, str], installed: dict[str, str], ignore: frozenset[str] = frozenset()) -> list[str]:
    """One line per package whose installed version is not the lock's (missing, other version, extra)."""
    out = []
    for name in sorted(set(lock) | set(installed)):
        want, have = lock.get(name), installed.get(name)
        if name in ignore or want == have or (want is None and name in BOOTSTRAP):
            continue
        if want is None:
            out.append(f"{name}=={have} is installed but not in the lock")
        elif have is None:
            out.append(f"{name}=={want} is in the lock but not installed")
        else:
            out.append(f"{name}: lock {want}, installed {have}")
    return out
