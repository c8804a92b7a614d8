"""A/B assignment: which variant answers a request.

A client key (header `X-Client-Id`) is hashed with the experiment id into a bucket, a number
uniform in [0, 100); the request goes to the challenger when its bucket is below the challenger's
share (%). So the same key gets the same variant for as long as the experiment lasts, and changing
the share moves the fewest clients: raising it from 10 to 20 moves exactly the keys whose bucket
is in [10, 20) to the challenger, and no key the other way (consistent hashing on a line).
A request without a key gets a fresh random draw, and is counted apart (metric label keyed=no).

The experiment id is the pair of versions served (`v3-v5`): when either alias moves, it is a
new experiment and the assignment is drawn anew.
"""

from __future__ import annotations

import hashlib
import random

CHAMPION, CHALLENGER = "champion", "challenger"
_SCALE = 100.0 / 2**64  # 8 bytes of the digest -> [0, 100)


def bucket(experiment: str, key: str) -> float:
    """The key's bucket in [0, 100) for this experiment: stable across processes and restarts
    (sha256, not Python's per-process salted hash())."""
    digest = hashlib.sha256(f"{experiment}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * _SCALE


def choose(share: float, experiment: str, key: str | None, rng: random.Random | None = None) -> str:
    """CHAMPION or CHALLENGER for a request with this client key (None: drawn at random);
    `share` is the challenger's share in % (0: never, 100: always)."""
    point = bucket(experiment, key) if key else (rng or random).random() * 100.0
    return CHALLENGER if point < share else CHAMPION


def experiment_id(champion_version: str | None, challenger_version: str | None) -> str:
    """The experiment the assignment belongs to: the pair of versions served."""
    return f"v{champion_version or '-'}-v{challenger_version or '-'}"


def parse_share(raw: str | None, where: str) -> float | None:
    """The share override from the registered model tag (a string "0".."100"); None when unset.
    ValueError: one line naming the tag, the value and the fix."""
    if raw is None or raw.strip() == "":
        return None
    try:
        share = float(raw)
    except ValueError:
        share = float("nan")
    if not 0.0 <= share <= 100.0:  # also false for nan
        raise ValueError(f"{where}={raw!r}: give a challenger share in % from 0 to 100, or delete the tag")
    return share
