"""``hayhooks`` with its background timers stretched, for runs under valgrind (``bench_instructions``).

Under callgrind an echo request takes ~110 times longer than natively (here); timers do not. Left alone, the
metrics flush (every 50 ms) and the recent-runs writer (every 0.5 s) would run ~100 times more often
per request than in a real server, and their cost would be charged to every request. Stretching
them by ``HAYHOOKS_BENCH_STRETCH`` (``bench_instructions --stretch``, default 100) keeps the ratio of
background work to requests close to native.
"""

from __future__ import annotations

import os

from hayhooks.cli.main import main
from hayhooks.observability import metrics, recent

STRETCH = float(os.environ.get("HAYHOOKS_BENCH_STRETCH", "100"))

metrics.Metrics.flush_every.__defaults__ = (metrics.FLUSH_INTERVAL * STRETCH,)
recent._FLUSH_INTERVAL *= STRETCH

if __name__ == "__main__":
    main()
