"""The one place that touches private parts of ``prometheus_client``.

prometheus_client picks its value storage (in-memory or multiprocess mmap files) once, when
``prometheus_client.values`` is first imported, from ``PROMETHEUS_MULTIPROC_DIR``. Our worker
processes choose the directory themselves at startup, possibly after something else imported
prometheus_client; then we switch the storage class so every metric created afterwards goes to
the shared files. ``tests/test_observability_metrics.py`` pins these names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def enable_multiprocess(directory: Path) -> None:
    """Route every metric value this process creates from now on to files under ``directory``."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def upper_bounds(histogram: Any) -> list[float]:
    """A histogram child's bucket upper bounds, ``+Inf`` last (``_upper_bounds``)."""
    return list(histogram._upper_bounds)


def add_to_bucket(histogram: Any, index: int, count: float) -> None:
    """Add ``count`` observations to bucket ``index`` of a histogram child (``_buckets``): the
    bulk form of ``observe``, one file write for many observations."""
    histogram._buckets[index].inc(count)


def add_to_sum(histogram: Any, amount: float) -> None:
    """Add ``amount`` to a histogram child's sum (``_sum``)."""
    histogram._sum.inc(amount)


def is_multiprocess() -> bool:
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))
