from bench.workloads import echo
from pydantic import BaseModel

from hayhooks import BasePipelineWrapper, DurableContext


class EchoRequest(BaseModel):
    text: str


class PipelineWrapper(BasePipelineWrapper):
    """The echo workload as /run (``run_api``) and as a durable execution (``run_durable``)."""

    skip_mcp = True
    durable_revision = "echo-v1"

    def setup(self) -> None:
        pass

    def run_api(self, text: str) -> str:
        return echo(text)

    def run_durable(self, context: DurableContext, request: EchoRequest) -> str:
        return echo(request.text)
