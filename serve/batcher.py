"""Micro-batching: requests from concurrent clients are joined into one forward pass.

A batch starts with the oldest waiting request and takes more while they fit in
`max_batch` images; it waits up to `max_wait_s` for more only while other
requests are still arriving (being read and decoded), so a lone client pays no
wait. A request is never split across batches. The forward pass runs in one
worker thread, so the event loop keeps reading requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


@dataclass
class _Job:
    images: np.ndarray  # uint8 (n, 32, 32, 3)
    future: asyncio.Future


class MicroBatcher:
    def __init__(
        self,
        run_batch: Callable[[np.ndarray], list],
        max_batch: int,
        max_wait_s: float,
        init_thread: Callable[[], None] | None = None,
    ):
        """run_batch(images (N, 32, 32, 3)) -> one result per image, called in the worker thread
        (set up by init_thread once)."""
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.arriving = 0  # requests being read/decoded that will submit soon
        self._queue: asyncio.Queue[_Job] | None = None
        self._carry: _Job | None = None  # taken from the queue but did not fit the last batch
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="forward", initializer=init_thread)

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    @property
    def _q(self) -> asyncio.Queue[_Job]:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() must run (in the server's event loop) before submit")
        return self._queue

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._pool.shutdown(wait=True)

    async def submit(self, images: np.ndarray) -> list:
        """Results for these images, computed in some batch."""
        future = asyncio.get_running_loop().create_future()
        await self._q.put(_Job(images, future))
        return await future

    async def _next(self, timeout: float | None) -> _Job | None:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return await self._q.get()
        if not self._q.empty() or timeout <= 0:
            return None if self._q.empty() else self._q.get_nowait()
        try:
            return await asyncio.wait_for(self._q.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        first = await self._next(None)
        assert first is not None  # without a timeout _next waits for a job
        jobs = [first]
        size, deadline = len(jobs[0].images), loop.time() + self.max_wait_s
        while size < self.max_batch:
            wait = deadline - loop.time() if self.arriving > 0 else 0.0
            job = await self._next(wait)
            if job is None:
                break
            if size + len(job.images) > self.max_batch:
                self._carry = job
                break
            jobs.append(job)
            size += len(job.images)
        return jobs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            live = [j for j in jobs if not j.future.done()]  # a client that hung up cancelled its future
            if not live:
                continue
            batch = np.concatenate([j.images for j in live])
            try:
                results = await loop.run_in_executor(self._pool, self.run_batch, batch)
            except Exception as exc:  # the model failed: every request of this batch gets the error
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            start = 0
            for j in live:
                if not j.future.done():
                    j.future.set_result(results[start : start + len(j.images)])
                start += len(j.images)
