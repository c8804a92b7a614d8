"""The feedback store on SQLite and on a real PostgreSQL server: record, label (stored, replaced,
unknown), the labelled rows, and nothing lost across a restart (engine disposed, store reopened)."""

from __future__ import annotations

import threading

import pytest

from serve.feedback import FeedbackStore, Prediction, UnknownRequest
from tests.support.postgres import postgres_url  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'feedback.db'}"
    base = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    name = f"fb_{tmp_path.name.lower().replace('-', '_')}"[:60]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


def test_label_stored_replaced_unknown_and_restart(url):
    store = FeedbackStore(url)
    store.record("r1", "champion", "3", 7, "client-a", 100.0)
    store.record_many(
        [Prediction("r2", "challenger", "4", 9, None, 101.0), Prediction("r3", "champion", "3", 1, None, 102.0)]
    )
    store.record("r1", "challenger", "9", 0, None, 999.0)  # a repeated id keeps its first row
    assert store.label("r1", 7, at=200.0) == "stored"
    assert store.label("r2", 5, at=201.0) == "stored"
    assert store.label("r2", 9, at=202.0) == "replaced"
    assert store.label("r2", 9, at=203.0) == "replaced"  # the same label again: same row
    with pytest.raises(UnknownRequest):
        store.label("nope", 1)
    store.dispose()

    reopened = FeedbackStore(url)  # a restart: a new engine on the same database
    rows = reopened.labelled()
    assert [(r.request_id, r.variant, r.version, r.predicted, r.label, r.correct) for r in rows] == [
        ("r1", "champion", "3", 7, 7, True),
        ("r2", "challenger", "4", 9, 9, True),
    ]
    assert rows[1].labelled_at == 203.0 and rows[0].at == 100.0
    assert [r.request_id for r in reopened.labelled(since=201.0)] == ["r2"]
    assert reopened.count() == 3
    reopened.dispose()


def test_concurrent_labels_of_one_request_end_in_one_row(url):
    store = FeedbackStore(url)
    store.record("r", "champion", "1", 3, None, 1.0)
    results: list[str] = []
    threads = [threading.Thread(target=lambda i=i: results.append(store.label("r", i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results).count("stored") == 1 and len(results) == 8
    assert len(store.labelled()) == 1
    store.dispose()
