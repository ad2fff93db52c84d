"""Open WebUI events a chat wrapper can yield between text chunks (Hayhooks 2.x names).

Open WebUI reads ``data: {"event": {"type": ..., "data": ...}}`` messages of an OpenAI-compatible
stream and turns them into status lines, toasts, citations or message edits. Yield these objects
from ``run_chat_completion(_async)`` generators, or return them from ``on_tool_call_start`` /
``on_tool_call_end`` / ``on_pipeline_end`` hooks of ``streaming_generator``.
"""

from __future__ import annotations

import html
from typing import Any, Literal

from pydantic import BaseModel

from hayhooks.streaming.events import PipelineEvent

__all__ = [
    "OpenWebUIEvent",
    "StatusEventData",
    "MessageEventData",
    "NotificationEventData",
    "create_status_event",
    "create_chat_completion_event",
    "create_message_event",
    "create_replace_event",
    "create_source_event",
    "create_citation_event",
    "create_notification_event",
    "create_chat_title_event",
    "create_chat_tags_event",
    "create_details_tag",
]


class StatusEventData(BaseModel):
    description: str
    done: bool = False
    hidden: bool = False


class MessageEventData(BaseModel):
    content: str


class NotificationEventData(BaseModel):
    type: Literal["info", "success", "warning", "error"] = "info"
    content: str


class OpenWebUIEvent(PipelineEvent):
    """An event in Open WebUI's event catalogue (``status``, ``message``, ``replace``, ...)."""


def create_status_event(description: str, done: bool = False, hidden: bool = False) -> OpenWebUIEvent:
    """A status line above the message (a spinner until ``done``)."""
    return OpenWebUIEvent(
        type="status", data=StatusEventData(description=description, done=done, hidden=hidden)
    )


def create_message_event(content: str) -> OpenWebUIEvent:
    """Append ``content`` to the message being written."""
    return OpenWebUIEvent(type="message", data=MessageEventData(content=content))


def create_replace_event(content: str) -> OpenWebUIEvent:
    """Replace the whole message being written by ``content``."""
    return OpenWebUIEvent(type="replace", data=MessageEventData(content=content))


def create_source_event(source_data: dict[str, Any]) -> OpenWebUIEvent:
    """Attach a source / citation (Open WebUI's ``{"document": [...], "metadata": [...], "source": {...}}``)."""
    return OpenWebUIEvent(type="source", data=dict(source_data))


def create_citation_event(citation_data: dict[str, Any]) -> OpenWebUIEvent:
    """Attach a citation (older Open WebUI name of ``source``)."""
    return OpenWebUIEvent(type="citation", data=dict(citation_data))


def create_notification_event(
    content: str, notification_type: Literal["info", "success", "warning", "error"] = "info"
) -> OpenWebUIEvent:
    """A toast notification."""
    return OpenWebUIEvent(
        type="notification", data=NotificationEventData(type=notification_type, content=content)
    )


def create_chat_title_event(title: str) -> OpenWebUIEvent:
    """Set the conversation title."""
    return OpenWebUIEvent(type="chat:title", data={"title": title})


def create_chat_completion_event(data: dict[str, Any]) -> OpenWebUIEvent:
    """A ``chat:completion`` event carrying completion data (the 2.x helper of that name)."""
    return OpenWebUIEvent(type="chat:completion", data=dict(data))


def create_chat_tags_event(tags: list[str]) -> OpenWebUIEvent:
    """Set the conversation tags."""
    return OpenWebUIEvent(type="chat:tags", data={"tags": list(tags)})


def create_details_tag(tool_name: str, summary: str, content: str) -> str:
    """A collapsible ``<details>`` block Open WebUI renders inline (a string to yield as content).

    Typical use: return it from ``on_tool_call_end`` to show a tool's result under its name.
    """
    return (
        f'<details type="{html.escape(tool_name, quote=True)}" done="true">\n'
        f"<summary>{html.escape(summary, quote=False)}</summary>\n\n{content}\n</details>\n\n"
    )
