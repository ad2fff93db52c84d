"""The work both servers do. The baseline app and the bench pipeline wrappers import these very
functions, so any difference in the numbers is the serving stack, never the workload."""

from __future__ import annotations

import time

# ~30 ms of pure-Python work (holds the GIL the whole time) on the 2-core bench machine.
CPU_ITERATIONS = 300_000


def echo(text: str) -> str:
    return text


def cpu_work(iterations: int = CPU_ITERATIONS) -> int:
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) % 1_000_003
    return acc


# What a sync pipeline calling an LLM API does, to the server: block its thread, use no CPU.
IO_WAIT_SECONDS = 0.05


def io_wait(text: str, seconds: float = IO_WAIT_SECONDS) -> str:
    time.sleep(seconds)
    return text
