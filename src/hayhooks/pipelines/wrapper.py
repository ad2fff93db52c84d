"""The class users subclass in ``pipeline_wrapper.py``.

Compatible with Hayhooks 2.x wrapper files: the same method names and signatures. A capability
(run, chat, responses, files, durable) exists when the subclass overrides the matching method; the base
versions only raise, so introspection of "is it overridden" is the single source of what a
pipeline can do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

# Method names per capability; the async variant wins when both are defined.
CAPABILITY_METHODS: dict[str, tuple[str, str]] = {
    "run": ("run_api", "run_api_async"),
    "chat": ("run_chat_completion", "run_chat_completion_async"),
    "responses": ("run_response", "run_response_async"),
    "files": ("run_file_upload", "run_file_upload_async"),
    # Durable runs (``POST /{name}/run-durable``): ``run_durable(self, context, request)``.
    "durable": ("run_durable", "run_durable_async"),
}


class BasePipelineWrapper(ABC):
    """Base of every pipeline wrapper.

    ``setup()`` runs once per process when the pipeline is loaded; the run methods are then called
    concurrently (sync ones from a thread pool), so they must not mutate shared state unguarded.
    Set ``skip_mcp = True`` to keep the pipeline out of the MCP tool list.
    """

    skip_mcp: bool = False
    # Durable runs: the code version an execution was started on (an execution only resumes on
    # the same revision), and the pydantic model ``POST .../resume`` bodies are validated against.
    durable_revision: str = ""
    durable_resume_model: Any = None

    def __init__(self) -> None:
        self.pipeline: Any = None

    @abstractmethod
    def setup(self) -> None:
        """Build ``self.pipeline`` (or whatever the run methods need)."""

    def run_api(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("run_api is not implemented")

    async def run_api_async(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("run_api_async is not implemented")

    def run_chat_completion(self, model: str, messages: list[dict], body: dict) -> Any:
        raise NotImplementedError("run_chat_completion is not implemented")

    async def run_chat_completion_async(self, model: str, messages: list[dict], body: dict) -> Any:
        raise NotImplementedError("run_chat_completion_async is not implemented")

    def run_response(self, model: str, input_items: list[dict], body: dict) -> Any:
        raise NotImplementedError("run_response is not implemented")

    async def run_response_async(self, model: str, input_items: list[dict], body: dict) -> Any:
        raise NotImplementedError("run_response_async is not implemented")

    def run_durable(self, context: Any, request: Any) -> Any:
        raise NotImplementedError("run_durable is not implemented")

    async def run_durable_async(self, context: Any, request: Any) -> Any:
        raise NotImplementedError("run_durable_async is not implemented")

    def run_file_upload(self, filename: str, content_type: str, content: bytes, purpose: str) -> Any:
        raise NotImplementedError("run_file_upload is not implemented")

    async def run_file_upload_async(
        self, filename: str, content_type: str, content: bytes, purpose: str
    ) -> Any:
        raise NotImplementedError("run_file_upload_async is not implemented")


def implemented_method(wrapper: BasePipelineWrapper, capability: str) -> tuple[str, bool] | None:
    """Return ``(method_name, is_async)`` for the capability, or None if the wrapper lacks it."""
    sync_name, async_name = CAPABILITY_METHODS[capability]
    cls = type(wrapper)
    for name, is_async in ((async_name, True), (sync_name, False)):
        impl = getattr(cls, name, None)
        if impl is not None and impl is not getattr(BasePipelineWrapper, name, None):
            return name, is_async
    return None
