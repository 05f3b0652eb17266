"""Fewer garbage collections while a run goes on.

With hundreds of items in flight, each holding its turns and prompts for a few
seconds, CPython's default thresholds (700, 10, 10) promote those objects to
the oldest generation and then scan every live object again and again: at 512
items in flight that was two thirds of the run's CPU time. So while any run is
going on, objects made before it (modules, compiled graphs) are frozen out of
collection, and a collection starts only once 10,000 more objects are alive
(older generations after 20 younger collections each). Garbage is still
collected; only the timing changes. The settings are put back when the last run
in the process ends.
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 20, 20)

_runs = 0
_saved: tuple[int, int, int] = gc.get_threshold()


def hold() -> None:
    """A run starts: the first one freezes what exists and raises the thresholds."""
    global _runs, _saved
    if _runs == 0:
        _saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(*(max(now, ours) for now, ours in zip(_saved, THRESHOLDS, strict=True)))
    _runs += 1


def release() -> None:
    """A run ends: the last one puts the thresholds back and unfreezes."""
    global _runs
    _runs -= 1
    if _runs == 0:
        gc.set_threshold(*_saved)
        gc.unfreeze()
