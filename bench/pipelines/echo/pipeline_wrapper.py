from bench.workloads import echo

from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    """Trivial echo with a sync run_api (runs on hayhooks' thread pool, like the baseline's `def`)."""

    skip_mcp = True

    def setup(self) -> None:
        pass

    def run_api(self, text: str) -> str:
        """Return the text unchanged.

        Args:
            text: any text.
        """
        return echo(text)
