"""The pair of variants a server holds, champion and challenger, and which one answers.

Modes (settings `mode`): `single` serves the champion slot only (today's server); `ab` answers
each request from the variant its client key is assigned to (serve/assign.py); `shadow` answers
from the champion and has the challenger score a copy afterwards (serve/dispatch.py). When one
variant has no model loaded, the other answers, and `/ready` and `cifar100_variant_up` say so.
"""

from __future__ import annotations

from serve.assign import CHALLENGER, CHAMPION, choose, experiment_id
from serve.follow import Follower
from serve.metrics import Metrics
from serve.reload import ModelHolder
from serve.settings import Settings


class Variants:
    def __init__(self, settings: Settings, metrics: Metrics, champion: ModelHolder | None = None):
        self.settings, self.metrics = settings, metrics
        first = champion or ModelHolder(settings, metrics)
        self.holders = {CHAMPION: first}
        if settings.mode != "single":
            self.holders[CHALLENGER] = ModelHolder(settings, metrics, variant=CHALLENGER, client=first.client)
        self.follower = Follower(settings, self.holders, metrics, first.client)
        metrics.mode.labels(mode=settings.mode).set(1)
        for name in self.holders:
            metrics.up.labels(variant=name).set(0)

    @property
    def champion(self) -> ModelHolder:
        return self.holders[CHAMPION]

    @property
    def share(self) -> float:
        """The challenger's share (%) in effect: the registered model tag's when set, else the setting's."""
        override = self.follower.share_override
        share = self.settings.challenger_share if override is None else override
        self.metrics.share.set(share if self.settings.mode == "ab" else 0)
        return share

    def experiment(self) -> str:
        return experiment_id(*(self._version(name) for name in (CHAMPION, CHALLENGER)))

    def _version(self, name: str) -> str | None:
        holder = self.holders.get(name)
        model = holder.current if holder else None
        return model.version if model else None

    def pick(self, client_key: str | None) -> ModelHolder | None:
        """The holder that answers this request; None when no variant has a model loaded."""
        wanted = CHAMPION
        if self.settings.mode == "ab":
            wanted = choose(self.share, self.experiment(), client_key)
        elif self.settings.mode == "shadow" and self.champion.current is None:
            wanted = CHALLENGER  # the champion is missing: the challenger answers rather than nobody
        holder = self.holders[wanted]
        if holder.current is not None:
            return holder
        other = next((h for h in self.holders.values() if h.current is not None), None)
        if other is not None:
            self.metrics.fallbacks.labels(wanted=wanted).inc()
        return other

    def status(self) -> dict:
        """What /ready reports besides the answering model: every variant, the share, the registry."""
        variants = {
            name: {
                "loaded": h.current is not None,
                "version": h.current.version if h.current else None,
                "follows": h.follows,
                "last_error": h.last_error,
            }
            for name, h in self.holders.items()
        }
        share = {"challenger_share": self.share, "share_tag_error": self.follower.share_error}
        extra = share if self.settings.mode == "ab" else {}
        return {
            "mode": self.settings.mode,
            "variants": variants,
            "missing": [name for name, v in variants.items() if not v["loaded"]],
            **extra,
            "registry": self.follower.registry.as_dict(),
        }

    def start(self) -> None:
        self.follower.start()

    def stop(self) -> None:
        self.follower.stop()
