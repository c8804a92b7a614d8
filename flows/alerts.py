"""Alertmanager's webhook JSON (version 4), as the guardrail receiver accepts it.

https://prometheus.io/docs/alerting/latest/configuration/#webhook_config: a group of alerts,
each with its status, labels, annotations and fingerprint. Unknown keys are ignored (Alertmanager
adds some between releases); a missing or mistyped field the guardrail needs is one line naming it.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FIX = "send Alertmanager's webhook JSON (version 4)"


class BadPayload(ValueError):
    """A request body that is not Alertmanager's webhook JSON; the message is one line."""


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    fingerprint: str = ""


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert]


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse(body: bytes) -> Payload:
    """The payload in body; BadPayload (one line: field, value, fix) when it is not one."""
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadPayload(f"alert payload: the body is not JSON ({exc.msg} at byte {exc.pos}): {FIX}") from None
    except UnicodeDecodeError:
        raise BadPayload(f"alert payload: the body is not UTF-8 text: {FIX}") from None
    try:
        return Payload.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        got = "missing" if err["type"] == "missing" else f"got {_shown(err.get('input'))}"
        raise BadPayload(f"alert payload: field {where}: {err['msg']} ({got}): {FIX}") from None
