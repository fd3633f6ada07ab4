"""The retained sensor status (``nightcramp/v1/<wearer>/<sensor>/status``): one typed model that
the collector and the virtual sensors publish and the detector reads."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SensorStatus(BaseModel):
    """What a sensor says about itself. ``channels`` and ``fs`` name every stream it sends."""

    model_config = ConfigDict(extra="allow")  # newer senders may add fields; they are kept

    state: Literal["online", "offline"]
    link: str = Field(description="ble for a real sensor, simulated for a virtual one")
    battery_pct: int | None = Field(None, ge=0, le=100)
    address: str | None = None
    channels: dict[str, list[str]] = Field(default_factory=dict, description="labels per stream")
    fs: dict[str, float] = Field(default_factory=dict, description="[Hz] sample rate per stream")
    stats: dict[str, int] | None = None

    def payload(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class StatusError(ValueError):
    """A status payload that is not a sensor status; the message says why."""


def parse_status(payload: bytes) -> SensorStatus:
    """The status in ``payload``; StatusError when it is not JSON or not a status."""
    try:
        return SensorStatus.model_validate(json.loads(payload))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else "payload"
        raise StatusError(f"sensor status: {where}: {first['msg'] if first else exc}") from None
