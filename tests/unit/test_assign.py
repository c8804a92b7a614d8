"""A/B assignment (serve/assign.py): sticky per client key and experiment, raising the share moves
only keys into the challenger (the fewest possible), unkeyed requests drawn at random and counted apart."""

from __future__ import annotations

import random

import pytest

from serve.assign import CHALLENGER, CHAMPION, bucket, choose, experiment_id, parse_share

KEYS = [f"client-{i}" for i in range(20_000)]


def test_the_same_key_always_gets_the_same_variant_within_an_experiment():
    exp = experiment_id("3", "5")
    first = [choose(30, exp, key) for key in KEYS[:2000]]
    assert all(choose(30, exp, key) == v for key, v in zip(KEYS[:2000], first))
    assert bucket(exp, "client-7") == bucket("v3-v5", "client-7")  # a pure function of (experiment, key)
    assert 0.0 <= min(bucket(exp, k) for k in KEYS) and max(bucket(exp, k) for k in KEYS) < 100.0


def test_buckets_are_uniform_so_the_share_is_the_share_of_clients():
    exp = experiment_id("1", "2")
    for share in (0, 10, 50, 90, 100):
        got = sum(choose(share, exp, key) == CHALLENGER for key in KEYS) / len(KEYS) * 100
        assert abs(got - share) < 2.0, (share, got)  # binomial sd at 20,000 keys is <= 0.36 %


def test_changing_the_share_moves_the_fewest_clients_and_only_one_way():
    exp = experiment_id("1", "2")
    before = {key: choose(10, exp, key) for key in KEYS}
    after = {key: choose(20, exp, key) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(before[k] == CHAMPION and after[k] == CHALLENGER for k in moved)  # nobody leaves the challenger
    expected = sum(10 <= bucket(exp, k) < 20 for k in KEYS)  # exactly the keys between the two shares
    assert len(moved) == expected and abs(len(moved) / len(KEYS) * 100 - 10) < 2.0
    back = {key: choose(10, exp, key) for key in KEYS}
    assert back == before  # lowering it again restores every client's variant


def test_a_new_experiment_reassigns_independently():
    a = [choose(50, experiment_id("1", "2"), key) for key in KEYS[:5000]]
    b = [choose(50, experiment_id("1", "3"), key) for key in KEYS[:5000]]
    same = sum(x == y for x, y in zip(a, b)) / len(a)
    assert 0.4 < same < 0.6  # independent draws agree about half the time


def test_requests_without_a_key_are_drawn_at_random():
    rng = random.Random(0)
    draws = [choose(25, "v1-v2", None, rng) for _ in range(20_000)]
    assert abs(draws.count(CHALLENGER) / len(draws) * 100 - 25) < 2.0
    assert choose(0, "v1-v2", None, rng) == CHAMPION and choose(100, "v1-v2", None, rng) == CHALLENGER
    assert choose(100, "v1-v2", "") == CHALLENGER  # an empty key is no key


def test_the_share_tag_is_checked_with_a_one_line_error():
    assert parse_share(None, "tag t") is None and parse_share(" ", "tag t") is None
    assert (
        parse_share("0", "tag t") == 0.0 and parse_share("100", "tag t") == 100.0 and parse_share("12.5", "t") == 12.5
    )
    for bad in ("101", "-1", "half", "nan"):
        with pytest.raises(ValueError, match=r"tag t=.*give a challenger share in % from 0 to 100") as err:
            parse_share(bad, "tag t")
        assert "\n" not in str(err.value)
