"""Runs of equal flags, shared by sleep scoring, the cramp evidence and the timeline."""

from __future__ import annotations

import numpy as np

from detector.engine.intervals import longest_run, runs


def test_runs_cover_every_element_once_with_their_values():
    f = np.array([0, 0, 1, 1, 1, 0, 1], np.uint8)
    assert runs(f) == [(0, 2, 0), (2, 5, 1), (5, 6, 0), (6, 7, 1)]
    assert runs([True, True]) == [(0, 2, 1)]
    assert runs([]) == []


def test_longest_run_of_true():
    assert longest_run(np.array([1, 0, 1, 1, 1, 0, 1, 1], bool)) == 3
    assert longest_run(np.zeros(5, bool)) == 0
    assert longest_run(np.zeros(0, bool)) == 0
