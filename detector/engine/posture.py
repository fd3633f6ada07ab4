"""Per-leg accelerometer stage: moving seconds, still postures, rotations and upright periods.

Works on 1-s frames (``acc.frame_s``) of the mean gravity vector and the dynamic RMS (g).
A rotation is a change of the gravity vector of at least ``acc.rotation_deg`` between two
still postures; an upright period is the shank axis above ``acc.vertical_deg`` elevation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.engine.config import DetectorConfig
from detector.engine.dsp import angle_deg
from detector.engine.frontend import AccFrames
from detector.engine.state import Stateful
from detector.engine.stream import Growable, Hysteresis


@dataclass
class PostureOut:
    rotations: list[tuple[int, int, float]] = field(default_factory=list)  # frames, degrees
    upright: list[tuple[int, int]] = field(default_factory=list)


class AccStage(Stateful):
    _derived = frozenset({"cfg"})

    def __init__(self, cfg: DetectorConfig) -> None:
        a = cfg.acc
        self.cfg = cfg
        fps = 1.0 / a.frame_s
        self.axis = "XYZ".index(a.shank_axis)
        self.still_min = max(1, round(a.still_min_s * fps))
        self.max_gap = round(a.max_rollover_s * fps)
        self.still = Hysteresis(1)
        self.up = Hysteresis(max(1, round(a.upright_min_s * fps)))
        self.unit = Growable(np.float64, 3)
        self.moving = Growable(np.uint8)
        self.lost = Growable(np.uint8)
        self.dynamic = Growable(np.float32)
        self.upright = Growable(np.uint8)
        self._last: tuple[int, np.ndarray] | None = None  # end frame, vector of last posture
        self._current: int | None = None
        self.n_moving = 0  # whole-night counts for the signal-quality report (frames)
        self.n_lost = 0

    def process(self, fr: AccFrames) -> PostureOut:
        a = self.cfg.acc
        out = PostureOut()
        n = len(fr)
        if n == 0:
            return out
        norm = np.linalg.norm(fr.mean, axis=1, keepdims=True)
        unit = np.where(norm > 1e-6, fr.mean / np.maximum(norm, 1e-6), 0.0)
        prev = self.unit[-1:] if self.unit.n else unit[:1]
        turn = angle_deg(unit, np.concatenate([prev, unit[:-1]]))
        moving = (fr.dynamic > a.move_g) & ~fr.lost
        still = ~moving & (turn < a.still_deg_per_s * a.frame_s) & ~fr.lost
        self.unit.extend(unit)
        self.moving.extend(moving.astype(np.uint8))
        self.lost.extend(fr.lost.astype(np.uint8))
        self.dynamic.extend(fr.dynamic.astype(np.float32))
        for s, e in self.still.update(still, ~still):
            if e - s >= self.still_min:
                if s != self._current:
                    self._segment_start(s, out)
                self._last = (e, self.unit[e - min(3, e - s):e].mean(axis=0))
                self._current = None
        o = self.still.open_since
        if o is not None and self.still.pos - o >= self.still_min and o != self._current:
            self._segment_start(o, out)
        elev = np.degrees(np.arcsin(np.clip(np.abs(unit[:, self.axis]), 0, 1)))
        upright = (elev > a.vertical_deg) & ~fr.lost
        self.upright.extend(upright.astype(np.uint8))
        self.n_moving += int(np.count_nonzero(moving))
        self.n_lost += int(np.count_nonzero(fr.lost))
        out.upright = self.up.update(upright, ~upright)
        return out

    def history(self) -> tuple[Growable, ...]:
        """The per-frame arrays the engine may trim (``Engine._trim_history``)."""
        return self.unit, self.moving, self.lost, self.dynamic, self.upright

    def oldest_open(self) -> int | None:
        """The first frame of a still posture still open whose start has not been read yet, or
        None. Once read (``_segment_start``), an open posture needs only its last frames when
        it ends; upright periods read no frames."""
        o = self.still.open_since
        return o if o is not None and o != self._current else None

    def flush(self) -> PostureOut:
        out = PostureOut()
        for s, e in self.still.flush():
            if e - s >= self.still_min and s != self._current:
                self._segment_start(s, out)
        out.upright = self.up.flush()
        return out

    def _segment_start(self, s: int, out: PostureOut) -> None:
        if self._last is not None:
            end, vec = self._last
            if s - end <= self.max_gap:
                b_vec = self.unit[s:s + 3].mean(axis=0)
                ang = float(angle_deg(vec, b_vec))
                if ang >= self.cfg.acc.rotation_deg:
                    out.rotations.append((end, s, ang))
        self._current = s
