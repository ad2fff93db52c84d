"""``hayhooks`` with its background timers stretched, for runs under valgrind (``bench_instructions``).

Under callgrind a request takes ~50 times longer than natively; timers do not. Left alone, the
metrics flush (every 50 ms) and the recent-runs writer (every 0.5 s) would run ~50 times more often
per request than in a real server, and their cost would be charged to every request. Stretching
them by ``HAYHOOKS_BENCH_STRETCH`` keeps the ratio of background work to requests close to native.
"""

from __future__ import annotations

import os

from hayhooks.cli.main import main
from hayhooks.observability import metrics, recent

STRETCH = float(os.environ.get("HAYHOOKS_BENCH_STRETCH", "50"))

metrics.Metrics.flush_every.__defaults__ = (metrics.FLUSH_INTERVAL * STRETCH,)
recent._FLUSH_INTERVAL *= STRETCH

if __name__ == "__main__":
    main()
