"""The feedback store: one row per answered /predict request, and the true label when it comes.

SQLAlchemy 2 Core, so one code path serves SQLite (the default, `feedback.db` next to params.yaml)
and PostgreSQL (SERVE_FEEDBACK_URL=postgresql+psycopg://user@host/db, for a team's servers).

One row per request: the request's first image's top-1 fine class is what a label is scored
against (a request of several images is labelled by its first). A second label for the same
request id replaces the first (`replaced`): the client corrects a mistake, and sending the same
label twice leaves the same row (idempotent). Each write is one committed transaction, so a
restart loses nothing that was acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, select, update
from sqlalchemy.engine import Engine

metadata = MetaData()
predictions = Table(
    "predictions",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("variant", String(32), nullable=False),  # champion | challenger
    Column("version", String(32), nullable=False),  # the registry version that answered
    Column("predicted", Integer, nullable=False),  # top-1 fine class index of the first image
    Column("client_key", String(128)),  # X-Client-Id, when sent
    Column("at", Float, nullable=False, index=True),  # answered, unix seconds
    Column("label", Integer),  # true fine class index; NULL until feedback comes
    Column("labelled_at", Float, index=True),  # unix seconds of the last label
)


class UnknownRequest(LookupError):
    """No prediction was recorded under this request id."""


@dataclass(frozen=True)
class Prediction:
    request_id: str
    variant: str
    version: str
    predicted: int
    client_key: str | None
    at: float


@dataclass(frozen=True)
class Labelled:
    request_id: str
    variant: str
    version: str
    predicted: int
    label: int
    at: float
    labelled_at: float

    @property
    def correct(self) -> bool:
        return self.predicted == self.label


def default_url(project: str | Path) -> str:
    return f"sqlite:///{Path(project).resolve() / 'feedback.db'}"


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Waits up to 30 s for another writer's lock instead of failing at once.
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True)


def _insert(dialect: str):
    """INSERT ... ON CONFLICT DO NOTHING for the engine's dialect: a repeated id keeps its first row."""
    from sqlalchemy.dialects import postgresql, sqlite

    if dialect == "postgresql":
        return postgresql.insert(predictions).on_conflict_do_nothing(index_elements=["request_id"])
    return sqlite.insert(predictions).on_conflict_do_nothing(index_elements=["request_id"])


class FeedbackStore:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = _engine(url)
        metadata.create_all(self.engine)  # checkfirst: an existing table is kept as it is

    def dispose(self) -> None:
        self.engine.dispose()

    def record_many(self, rows: Sequence[Prediction]) -> None:
        """Store answered predictions in one transaction; a request id already stored is left alone."""
        if not rows:
            return
        values = [row.__dict__ for row in rows]
        with self.engine.begin() as conn:
            conn.execute(_insert(self.engine.dialect.name), values)

    def record(
        self, request_id: str, variant: str, version: str, predicted: int, client_key: str | None, at: float
    ) -> None:
        self.record_many([Prediction(request_id, variant, version, predicted, client_key, at)])

    def label(self, request_id: str, label: int, at: float | None = None) -> Literal["stored", "replaced"]:
        """Set the true label of a recorded request: `stored` the first time, `replaced` after.
        UnknownRequest when no prediction has this id."""
        import time

        c, values = predictions.c, {"label": int(label), "labelled_at": time.time() if at is None else at}
        # Two single-statement updates, each atomic under the database's row lock (SQLite: its write
        # lock): the first that finds no label yet wins `stored`, every later one is `replaced`.
        with self.engine.begin() as conn:
            first = update(predictions).where(c.request_id == request_id, c.label.is_(None)).values(values)
            if conn.execute(first).rowcount == 1:
                return "stored"
            again = update(predictions).where(c.request_id == request_id).values(values)
            if conn.execute(again).rowcount == 1:
                return "replaced"
        raise UnknownRequest(request_id)

    def labelled(self, since: float | None = None) -> list[Labelled]:
        """Labelled predictions (labelled at or after `since`, unix s), oldest label first."""
        c = predictions.c
        query = select(c.request_id, c.variant, c.version, c.predicted, c.label, c.at, c.labelled_at).where(
            c.label.is_not(None)
        )
        if since is not None:
            query = query.where(c.labelled_at >= since)
        with self.engine.connect() as conn:
            return [Labelled(*row) for row in conn.execute(query.order_by(c.labelled_at, c.request_id))]

    def count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(predictions)).scalar_one())
