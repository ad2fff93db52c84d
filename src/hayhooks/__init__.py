"""Hayhooks: serve Haystack pipelines and agents as HTTP, OpenAI-compatible and MCP APIs.

This module is the public surface wrapper files import from (``from hayhooks import ...``).
Server and streaming pieces are imported lazily so that a wrapper importing ``BasePipelineWrapper``
does not pull in the whole server.
"""

from __future__ import annotations

from typing import Any

from hayhooks.logger import log
from hayhooks.pipelines.sse import SSEStream
from hayhooks.pipelines.wrapper import BasePipelineWrapper
from hayhooks.version import __version__

_LAZY = {
    "Pipeline": "haystack",
    "AsyncPipeline": "haystack",
    "create_app": "hayhooks.server.app",
    "run_app": "hayhooks.server.runner",
    "streaming_generator": "hayhooks.streaming",
    "async_streaming_generator": "hayhooks.streaming",
    "get_last_user_message": "hayhooks.streaming",
    "is_user_message": "hayhooks.streaming",
    "get_last_user_input_text": "hayhooks.streaming",
    "chat_messages_from_openai_response": "hayhooks.streaming",
    "PipelineEvent": "hayhooks.streaming",
    "get_input_files": "hayhooks.streaming",
    "StreamCancelled": "hayhooks.streaming",
    "default_on_tool_call_start": "hayhooks.callbacks",
    "default_on_tool_call_end": "hayhooks.callbacks",
    "default_on_pipeline_end": "hayhooks.callbacks",
    "DurableContext": "hayhooks.durable.context",
    "current_durable_context": "hayhooks.durable.context",
    "durable_streaming_callback": "hayhooks.durable.context",
    "RetryExecution": "hayhooks.durable.errors",
    "durable_agent_hooks": "hayhooks.durable.agent_hooks",
    "YAMLPipelineWrapper": "hayhooks.pipelines.yaml_pipeline",
    "coerce_pipeline_inputs": "hayhooks.pipelines.coerce",
}

__all__ = [
    "BasePipelineWrapper",
    "SSEStream",
    "__version__",
    "log",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hayhooks' has no attribute {name!r}")
    import importlib

    if module == "haystack":
        value = _haystack_pipeline(name)
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _haystack_pipeline(name: str) -> Any:
    import haystack

    # Haystack 3 merged AsyncPipeline into Pipeline (run_async); 2.x still has its own class.
    return getattr(haystack, name, None) or haystack.Pipeline
