"""Channel labels and physical units: nightcramp's label convention and the alias table.

Labels follow ``EMG <L|R>-<Muscle>`` and ``ACC <L|R>-<Place> <X|Y|Z>`` (case-insensitive);
common PSG labels map through ``config/channels.toml``. Units are converted to µV (EMG) and
g (acceleration), the detector's internal units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from ingest.paths import config_file, read_toml

Kind = Literal["emg", "acc"]
Side = Literal["left", "right"]

_EMG_RE = re.compile(r"^emg\s+([lr])\s*-\s*([a-z][a-z0-9]*)$", re.IGNORECASE)
_ACC_RE = re.compile(r"^acc\s+([lr])\s*-\s*([a-z][a-z0-9]*)\s+([xyz])$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ChannelName:
    """A recognised leg channel: what it measures and where."""

    kind: Kind
    side: Side
    site: str  # muscle for EMG ("Gastroc"), place for ACC ("Shank")
    axis: str | None  # "X" | "Y" | "Z" for ACC, None for EMG

    @property
    def canonical(self) -> str:
        letter = "L" if self.side == "left" else "R"
        if self.kind == "emg":
            return f"EMG {letter}-{self.site}"
        return f"ACC {letter}-{self.site} {self.axis}"


def _fold(label: str) -> str:
    return " ".join(label.strip().split()).casefold()


@lru_cache(maxsize=4)
def _table(path: Path) -> dict:
    return read_toml(path, "channel alias table")  # ConfigFileError names the file


def channel_table(path: Path | None = None) -> dict:
    """The alias and unit table (``config/channels.toml`` unless ``path`` is given)."""
    return _table(path or config_file("channels.toml"))


def with_aliases(table: dict, aliases: dict[str, str] | None) -> dict:
    """A copy of ``table`` with extra label aliases (later ones win)."""
    if not aliases:
        return table
    return {**table, "aliases": {**table.get("aliases", {}), **aliases}}


def parse_label(label: str, table: dict | None = None) -> ChannelName | None:
    """Recognise a leg channel label, directly or through the alias table; None if unknown."""
    table = table or channel_table()
    aliases = {_fold(k): v for k, v in table.get("aliases", {}).items()}
    text = aliases.get(_fold(label), label.strip())
    text = " ".join(text.split())
    if m := _EMG_RE.match(text):
        side: Side = "left" if m.group(1).lower() == "l" else "right"
        return ChannelName("emg", side, _title(m.group(2)), None)
    if m := _ACC_RE.match(text):
        side = "left" if m.group(1).lower() == "l" else "right"
        return ChannelName("acc", side, _title(m.group(2)), m.group(3).upper())
    return None


def _title(word: str) -> str:
    return word[:1].upper() + word[1:]


def unit_scale(kind: Kind, unit: str, *, label: str, table: dict | None = None) -> float:
    """Factor from a file's physical dimension to µV (EMG) or g (ACC).

    Raises ValueError naming the channel and the unit when the dimension does not fit the kind.
    """
    table = table or channel_table()
    units = table["units"][kind]
    folded = unit.strip().replace("µ", "u").replace("μ", "u").casefold()
    for name, factor in units.items():
        if name.replace("µ", "u").replace("μ", "u").casefold() == folded:
            return float(factor)
    what = "a voltage" if kind == "emg" else "an acceleration"
    allowed = ", ".join(k for k in units if "μ" not in k)
    raise ValueError(
        f"{label}: physical dimension {unit.strip()!r} is not {what} (expected one of {allowed})"
    )
