"""Streaming helpers for wrapper code: run a pipeline or agent and yield chunks, read requests.

The lead re-exports these from ``hayhooks``; wrappers may import from either place.
"""

from hayhooks.streaming.background import iterate_in_background
from hayhooks.streaming.components import is_streaming_capable, select_streaming_components
from hayhooks.streaming.events import PipelineEvent, is_event
from hayhooks.streaming.generator import StreamCancelled, async_streaming_generator, streaming_generator
from hayhooks.streaming.messages import (
    chat_messages_from_openai_response,
    get_input_files,
    get_last_user_input_text,
    get_last_user_message,
    is_user_message,
    normalize_input_items,
)

__all__ = [
    "PipelineEvent",
    "StreamCancelled",
    "async_streaming_generator",
    "chat_messages_from_openai_response",
    "get_input_files",
    "get_last_user_input_text",
    "get_last_user_message",
    "is_event",
    "is_streaming_capable",
    "is_user_message",
    "iterate_in_background",
    "normalize_input_items",
    "select_streaming_components",
    "streaming_generator",
]
