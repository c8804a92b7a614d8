"""The server's side of feedback: a writer thread that records answered predictions in batches
(the event loop only appends to a queue, so a slow or absent database never slows an answer),
and POST /feedback.

POST /feedback {"request_id": "...", "label": 42 | "apple"}: 200 {"status": "stored" | "replaced"},
404 for an id never answered, 422 for a label that is no fine class (index 0..N-1 or its name).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from serve.feedback import FeedbackStore, Prediction, UnknownRequest
from serve.model import LoadedModel

log = logging.getLogger("serve")
QUEUE_MAX = 100_000  # answered predictions waiting for the writer; beyond it they are dropped (and counted)
BATCH_MAX = 500  # rows per transaction
FLUSH_WAIT_S = 5.0  # how long /feedback waits for its request's row to reach the store


class FeedbackBody(BaseModel):
    request_id: str = Field(min_length=1, max_length=64)
    label: int | str  # fine class index, or its name


class Recorder:
    """Answered predictions -> the store, from one background thread, BATCH_MAX rows a transaction."""

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self.queue: queue.Queue[Prediction | None] = queue.Queue(QUEUE_MAX)
        self.dropped = 0
        self._pending: set[str] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    def record(self, request_id: str, variant: str, version: str, predicted: int, client_key: str | None) -> None:
        """Called on the event loop: never blocks."""
        row = Prediction(request_id, variant, version, predicted, client_key, time.time())
        with self._lock:
            try:
                self.queue.put_nowait(row)
            except queue.Full:
                self.dropped += 1
                return
            self._pending.add(request_id)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feedback-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.queue.put(None)  # after every row already queued: they are written first
            self._thread.join(timeout=30)
        self.store.dispose()

    def wait_written(self, request_id: str, timeout_s: float = FLUSH_WAIT_S) -> None:
        """Block (in a worker thread) until request_id's row, if queued, is in the store."""
        with self._lock:
            self._lock.wait_for(lambda: request_id not in self._pending, timeout_s)

    def _run(self) -> None:
        done = False
        while not done:
            batch = [self.queue.get()]
            while len(batch) < BATCH_MAX and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            done = None in batch
            rows = [row for row in batch if row is not None]
            self._write(rows)

    def _write(self, rows: list[Prediction]) -> None:
        try:
            self.store.record_many(rows)
        except Exception:  # the store being down must never stop the server; the rows are lost, counted
            log.exception("serve: feedback store write failed; %d predictions not recorded", len(rows))
            self.dropped += len(rows)
        with self._lock:
            self._pending.difference_update(row.request_id for row in rows)
            self._lock.notify_all()


def class_index(label: int | str, names: list[str] | None) -> int:
    """A fine class index from an index or a name; ValueError naming the problem."""
    count = len(names) if names else 100
    if isinstance(label, int):
        if not 0 <= label < count:
            raise ValueError(f"label {label}: a fine class index must be 0..{count - 1}")
        return label
    if names is None:
        raise ValueError(f"label {label!r}: no model is loaded to map class names; send the class index")
    if label not in names:
        raise ValueError(f"label {label!r} is not a fine class name (e.g. {names[0]!r}); or send its index")
    return names.index(label)


def feedback_route(app: FastAPI, loaded: Callable[[], LoadedModel | None], recorder: Recorder) -> None:
    @app.post("/feedback")
    def feedback(body: FeedbackBody) -> dict:  # a plain def: FastAPI runs it in a worker thread
        """The true label of an answered request (fine class index or name); a second label replaces it."""
        model = loaded()
        try:
            label = class_index(body.label, model.fine_names if model else None)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        recorder.wait_written(body.request_id)
        try:
            status = recorder.store.label(body.request_id, label)
        except UnknownRequest:
            raise HTTPException(404, f"request_id {body.request_id!r}: no prediction answered under it") from None
        return {"request_id": body.request_id, "label": label, "status": status}
