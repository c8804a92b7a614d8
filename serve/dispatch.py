"""One micro-batcher per variant, and the shadow copies.

Each variant has its own batcher and forward thread, so a batch holds one variant's requests and
runs on the one model object its holder held when the batch started: a batch never mixes versions.
In shadow mode the challenger scores a copy of each request the champion answered: the copy is
queued after the champion's answer is computed, on the challenger's own batcher, so it never
delays the answer; at most `MAX_SHADOW_PENDING` copies wait (more are dropped and counted), so a
slow challenger cannot grow memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from functools import partial

import numpy as np

from serve.assign import CHALLENGER, CHAMPION
from serve.batcher import MicroBatcher
from serve.metrics import Metrics
from serve.reload import ModelHolder
from serve.variants import Variants

log = logging.getLogger("serve")
MAX_SHADOW_PENDING = 64  # requests; a copy beyond them is dropped (cifar100_shadow_dropped_total)


def set_torch_threads(device: str, wanted: int | None = None) -> None:
    """CPU forward passes use all cores but one (SERVE_TORCH_THREADS, `wanted`, to choose): the event
    loop that reads requests needs a core of its own, and idle OpenMP threads spin on theirs."""
    import torch

    if wanted:
        torch.set_num_threads(wanted)
    elif device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))


def _forward(holder: ModelHolder, metrics: Metrics):
    variant = getattr(holder, "variant", CHAMPION)

    def run_batch(images: np.ndarray) -> list:
        model = holder.current  # held for the whole batch: a swap meanwhile does not touch it
        if model is None:  # /predict answers 503 before submitting, and a loaded model is only swapped
            raise RuntimeError(f"serve: a {variant} batch reached the forward thread before any model was loaded")
        probs, emb = model.predict(images)
        metrics.predictions(probs, model.fine_names, variant, model.version)
        if model.monitor is not None:
            try:
                model.monitor.observe(images, probs, emb)
                metrics.drift(model.monitor.status(), variant, model.version)
            except Exception:  # monitoring must never fail a prediction
                log.exception("serve: drift monitor failed on a batch")
        return [(model, row) for row in probs]

    return run_batch


class Dispatcher:
    def __init__(self, variants: Variants, metrics: Metrics):
        s = variants.settings
        threads = partial(set_torch_threads, variants.champion.device, s.torch_threads)
        self.variants, self.metrics = variants, metrics
        self.batchers = {
            name: MicroBatcher(_forward(h, metrics), s.max_batch_size, s.max_wait_ms / 1000, threads)
            for name, h in variants.holders.items()
        }
        self._shadows: set[asyncio.Task] = set()

    def start(self) -> None:
        for batcher in self.batchers.values():
            batcher.start()

    async def stop(self) -> None:
        for task in list(self._shadows):
            task.cancel()
        await asyncio.gather(*self._shadows, return_exceptions=True)
        for batcher in self.batchers.values():
            await batcher.stop()

    async def run(self, holder: ModelHolder, images: np.ndarray) -> list:
        """[(model, probs row)] for these images from `holder`'s variant; counts its latency and errors."""
        start = time.perf_counter()
        try:
            results = await self.batchers[holder.variant].submit(images)
        except Exception:
            version = holder.current.version if holder.current else ""
            self.metrics.errors.labels(variant=holder.variant, version=version).inc()
            raise
        elapsed = time.perf_counter() - start
        self.metrics.variant_latency.labels(variant=holder.variant, version=results[0][0].version).observe(elapsed)
        return results

    def shadow(self, holder: ModelHolder, images: np.ndarray, results: list) -> None:
        """In shadow mode, after the champion answered: queue the challenger's copy (never awaited here)."""
        challenger = self.variants.holders.get(CHALLENGER)
        if self.variants.settings.mode != "shadow" or holder.variant != CHAMPION or challenger is None:
            return
        if challenger.current is None:
            return
        if len(self._shadows) >= MAX_SHADOW_PENDING:
            self.metrics.shadow_dropped.inc()
            return
        top1 = np.array([int(row.argmax()) for _, row in results])
        task = asyncio.get_running_loop().create_task(self._score_copy(challenger, images, top1, results[0][0].version))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _score_copy(self, challenger: ModelHolder, images: np.ndarray, top1: np.ndarray, version: str) -> None:
        try:
            copy = await self.run(challenger, images)
        except Exception:  # the challenger failing never reaches a client
            log.exception("serve: the challenger failed on a shadow copy")
            return
        labels = {"champion_version": version, "challenger_version": copy[0][0].version}
        agreed = int(sum(int(row.argmax()) == t for (_, row), t in zip(copy, top1.tolist())))
        self.metrics.shadow_total.labels(**labels).inc(len(copy))
        self.metrics.shadow_agreed.labels(**labels).inc(agreed)
