"""The EDF+ export is written a chunk at a time; a run of missing samples that crosses a chunk
boundary must come out as one ``signal lost`` annotation with its true start and end."""

from __future__ import annotations

import numpy as np

from dashboard.export import _gap_runs


def _chunked(have: np.ndarray, fs: float, chunk: int) -> list[tuple[str, float, float]]:
    runs, open_since = [], None
    for a in range(0, len(have), chunk):
        part = have[a:a + chunk]
        got, open_since = _gap_runs(part, fs, a / fs, "EMG L-Gastroc", open_since,
                                    last=a + chunk >= len(have))
        runs += got
    return runs


def test_gaps_are_the_same_whatever_the_chunking():
    fs = 10.0
    have = np.ones(600, bool)
    have[95:130] = False  # crosses the boundary at 100 (9.5–13.0 s)
    have[200:205] = False  # 0.5 s: too short to annotate
    have[290:300] = False  # ends exactly at a boundary (29.0–30.0 s)
    have[400:] = False  # runs to the end of the night
    whole = _chunked(have, fs, len(have))
    assert whole == [("EMG L-Gastroc", 9.5, 13.0), ("EMG L-Gastroc", 29.0, 30.0),
                     ("EMG L-Gastroc", 40.0, 60.0)]
    for chunk in (7, 100, 150, 599):
        assert _chunked(have, fs, chunk) == whole, chunk
