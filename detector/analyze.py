"""Analyse a whole recording with the streaming engine, reading it block by block.

Memory stays bounded by the block size (``read_s`` seconds of every channel at a time) plus the
per-frame history of the night (about 20 floats per second per channel).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from detector.disclaimer import DISCLAIMER
from detector.engine.config import DetectorConfig
from detector.engine.events import Event, Match, clamp_to_recording, compare_events
from detector.engine.pipeline import Engine
from detector.engine.summary import NightSummary, summarize
from ingest.recordings.recording import Channel, Recording, RecordingError

SCHEMA = "nightcramp.analysis/1"


@dataclass
class Analysis:
    """Everything one analysis found: events, per-epoch sleep/wake, summary, and how."""

    recording: Recording
    config: DetectorConfig
    events: list[Event]
    summary: NightSummary
    hypnogram: np.ndarray  # per epoch: 1 wake, 0 sleep
    notes: list[str] = field(default_factory=list)
    advice: list[dict] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def to_json(self) -> dict:
        rec = self.recording
        return {
            "schema": SCHEMA,
            "recording": {
                "name": rec.name,
                "start": rec.start.isoformat(),
                "duration_s": round(rec.duration_s, 3),
                "channels": [c.as_dict() for c in rec.channels],
                "ignored_channels": rec.ignored,
                "annotations": [{"onset_s": a.onset_s, "duration_s": a.duration_s, "text": a.text}
                                for a in rec.annotations],
            },
            "events": [e.to_json(rec.start) for e in self.events],
            "summary": self.summary.to_json(),
            "advice": self.advice,
            "advice_disclaimer": DISCLAIMER,
            "hypnogram": {"epoch_s": self.config.sleep.epoch_s,
                          "wake": [int(x) for x in self.hypnogram]},
            "notes": self.notes,
            "config": self.config.model_dump(mode="json"),
        }

    def compare(self, truth: list[dict], kind: str, *, ignore_kinds: tuple[str, ...] = (),
                subtypes: tuple[str, ...] | None = None, truth_subtypes: tuple[str, ...] | None = None,
                sided: bool = True) -> Match:
        """Match events of ``kind`` with truth events (dicts with kind, start_s, end_s, side).

        ``ignore_kinds`` names truth kinds (``kind`` or ``kind:subtype``) that are "don't care"
        regions; ``subtypes``/``truth_subtypes`` restrict either side to some subtypes.
        """
        events = [{"kind": e.kind, "start_s": e.start_s, "end_s": e.end_s, "side": e.side,
                   "subtype": e.subtype} for e in self.events]
        if truth_subtypes is not None:
            truth = [t for t in truth if t["kind"] != kind or t.get("subtype", "") in truth_subtypes]
        return compare_events(events, truth, kind, ignore_kinds=ignore_kinds, subtypes=subtypes,
                              sided=sided)


def analyze_recording(rec: Recording, cfg: DetectorConfig, *, read_s: float = 300.0,
                      progress: Callable[[float], None] | None = None) -> Analysis:
    """Run the engine over ``rec``; ``progress`` gets the fraction done (0..1). The analysis
    carries no advice: ``detector.advice.rules.with_advice`` adds it (the command line does)."""
    if not rec.channels:
        found = ", ".join(rec.ignored[:12]) + (" …" if len(rec.ignored) > 12 else "")
        raise RecordingError(f"{rec.name}: no leg EMG or accelerometer channels found "
                             f"(channels present: {found or 'none'}); name them like 'EMG L-Gastroc' or "
                             "'ACC L-Shank X', or add an alias in config/channels.toml")
    notes = list(rec.notes)
    shown = rec  # the analysis lists every leg channel read; the engine gets the usable ones
    rec, coarse = _without_coarse_emg(rec, cfg)
    if coarse:
        steps = ", ".join(f"{c.label} {c.resolution:.4g} µV" for c in coarse)
        notes.append(f"EMG too coarsely quantised to score ({steps} per digital step, coarser than the "
                     f"{cfg.activation.onset_above_uV:g}-µV leg-movement onset criterion, AASM): leg "
                     "movements and cramps cannot be scored on "
                     + ("it; the channel is left out" if len(coarse) == 1 else "them; they are left out"))
    for c in rec.channels:
        if c.kind == "emg" and c.fs < cfg.front_end.bandpass_low_hz / 0.45:
            raise RecordingError(f"{rec.name}: {c.label}: sampling rate {c.fs:g} Hz is too low "
                                 f"for EMG (need at least {cfg.front_end.bandpass_low_hz / 0.45:.0f} Hz)")
    n_emg = sum(c.kind == "emg" for c in rec.channels)
    cores = os.cpu_count() or 1
    workers = min(n_emg, cores) if cores > 1 else 0
    with ThreadPoolExecutor(workers, thread_name_prefix="emg") if workers else nullcontext() as pool:
        engine = Engine(rec.channels, cfg, pool=pool)
        duration = rec.duration_s
        bounds = np.append(np.arange(0.0, duration, read_s), duration) if duration > 0 else np.zeros(1)

        def read(t0: float, t1: float) -> dict[int, np.ndarray]:
            return {i: rec.read(i, int(round(t0 * c.fs)), int(round(t1 * c.fs)))
                    for i, c in enumerate(rec.channels)}

        # The next chunk is filtered in threads while the engine digests this one.
        chunk = read(bounds[0], bounds[1]) if len(bounds) > 1 else {}
        frames = engine.filter_emg(chunk)
        for j in range(1, len(bounds)):
            nxt = read(bounds[j], bounds[j + 1]) if j + 1 < len(bounds) else None
            ready = frames()
            if nxt is not None:
                frames = engine.filter_emg(nxt)
            engine.update(chunk, emg_frames=ready)
            chunk = nxt or {}
            if progress:
                progress(bounds[j] / duration if duration else 1.0)
        result = engine.finish()
    clamp_to_recording(result.events, rec.duration_s)
    events = sorted(result.events, key=lambda e: (e.start_s, e.kind, e.side or "", e.channel or ""))
    notes += result.notes
    summary = summarize(result, rec.duration_s, events)
    return Analysis(shown, cfg, events, summary, result.hypnogram, notes)


def _without_coarse_emg(rec: Recording, cfg: DetectorConfig) -> tuple[Recording, list[Channel]]:
    """The recording without EMG channels whose digital step exceeds the onset criterion: on
    them the envelope is the step toggling, and a leg movement can hide within one step."""
    limit = cfg.activation.onset_above_uV
    coarse = [c for c in rec.channels if c.kind == "emg" and c.resolution and c.resolution > limit]
    if not coarse:
        return rec, []
    keep = [i for i, c in enumerate(rec.channels) if c not in coarse]
    return dataclasses.replace(rec, channels=[rec.channels[i] for i in keep],
                               sources=[rec.sources[i] for i in keep]), coarse


