from bench.workloads import echo

from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    """Trivial echo with an async run_api_async (runs on the event loop, like the baseline's `async def`)."""

    skip_mcp = True

    def setup(self) -> None:
        pass

    async def run_api_async(self, text: str) -> str:
        """Return the text unchanged.

        Args:
            text: any text.
        """
        return echo(text)
