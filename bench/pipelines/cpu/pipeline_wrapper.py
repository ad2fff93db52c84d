from bench.workloads import CPU_ITERATIONS, cpu_work

from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    """CPU-bound pure-Python loop (~30 ms) in a sync run_api."""

    skip_mcp = True

    def setup(self) -> None:
        pass

    def run_api(self, iterations: int = CPU_ITERATIONS) -> int:
        """Burn CPU for a fixed number of loop iterations.

        Args:
            iterations: loop iterations.
        """
        return cpu_work(iterations)
