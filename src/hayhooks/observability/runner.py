"""What ``hayhooks run`` does for observability before its workers start."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def instance_metrics_dir() -> Iterator[str]:
    """A fresh metrics directory for this server instance, exported to the workers it starts.

    Always a new one: a ``PROMETHEUS_MULTIPROC_DIR`` inherited from a parent process (another
    server, a test runner) must never mix its counts into ours. Removed when the server stops.
    """
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = tempfile.mkdtemp(prefix="hayhooks-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        shutil.rmtree(path, ignore_errors=True)
