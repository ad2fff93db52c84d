"""The one place that touches private parts of ``prometheus_client``.

prometheus_client picks its value storage (in-memory or multiprocess mmap files) once, when
``prometheus_client.values`` is first imported, from ``PROMETHEUS_MULTIPROC_DIR``. Our worker
processes choose the directory themselves at startup, possibly after something else imported
prometheus_client; then we switch the storage class so every metric created afterwards goes to
the shared files. ``tests/test_observability_metrics.py`` pins these names.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import Any


def enable_multiprocess(directory: Path) -> None:
    """Route every metric value this process creates from now on to files under ``directory``."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def observe_many(histogram: Any, amounts: list[float]) -> None:
    """``histogram.observe(a) for a in amounts`` with one write per bucket touched, not per amount.

    Uses the child's ``_upper_bounds``, ``_buckets`` and ``_sum`` (each bucket value has ``inc``).
    """
    bounds = histogram._upper_bounds
    counts: dict[int, int] = {}
    for amount in amounts:
        index = bisect.bisect_left(bounds, amount)
        counts[index] = counts.get(index, 0) + 1
    histogram._sum.inc(sum(amounts))
    for index, count in counts.items():
        histogram._buckets[index].inc(count)


def is_multiprocess() -> bool:
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))
