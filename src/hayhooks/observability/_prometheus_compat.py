"""The one place that touches a private part of ``prometheus_client``.

prometheus_client picks its value storage (in-memory or multiprocess mmap files) once, when
``prometheus_client.values`` is first imported, from ``PROMETHEUS_MULTIPROC_DIR``. Our worker
processes choose the directory themselves at startup, possibly after something else imported
prometheus_client; then we switch the storage class so every metric created afterwards goes to
the shared files. ``tests/test_observability_metrics.py`` pins these names.
"""

from __future__ import annotations

import os
from pathlib import Path


def enable_multiprocess(directory: Path) -> None:
    """Route every metric value this process creates from now on to files under ``directory``."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def is_multiprocess() -> bool:
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))
