from bench.workloads import io_wait

from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    """A sync run_api that waits 50 ms on "I/O" (like a blocking LLM API call) and echoes."""

    skip_mcp = True

    def setup(self) -> None:
        pass

    def run_api(self, text: str) -> str:
        """Wait, then return the text unchanged.

        Args:
            text: any text.
        """
        return io_wait(text)
