"""Helpers shared by the MCP tests (in-process and e2e)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from mcp import types

WAIT = 30  # seconds; a bound for what should happen promptly, never asserted on
FIXTURES = Path(__file__).parent / "fixtures" / "mcp_pipelines"
CORE = {"get_all_pipeline_statuses", "get_pipeline_status", "deploy_pipeline", "undeploy_pipeline"}
PIPELINE_TOOLS = {"rag", "shout", "stream", "astream", "broken_tool", "greet", "noisy"}

# A wrapper deployed at runtime by the tests; {doc} is its tool description.
ADDER = '''
from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        self.pipeline = None

    def run_api(self, a: int, b: int) -> int:
        """{doc}"""
        return a + b
'''


def tool_names(result: types.ListToolsResult) -> set[str]:
    return {t.name for t in result.tools}


class Notifications:
    """A legacy-session message handler recording tools/list_changed notifications."""

    def __init__(self) -> None:
        self.count = 0
        self._event = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1
            self._event.set()

    async def wait(self) -> None:
        with anyio.fail_after(WAIT):
            await self._event.wait()
        self._event = anyio.Event()
