"""Helpers the command groups share: configuration and services files, channel aliases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.engine.config import DetectorConfig
    from detector.service.settings import Services


def config(path: Path | None) -> DetectorConfig:
    from detector.engine.config import load_config

    return load_config(path) if path else load_config()


def services(path: Path | None) -> Services:
    from detector.service.settings import load_services

    return load_services(path)


def aliases(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--alias {item!r}: expected LABEL=NAME, e.g. 'Leg 1=EMG L-TibAnt'")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out
