"""``PipelineEvent``: a UI event a streaming wrapper yields next to text chunks.

The OpenAI routes send such an object as its own SSE message (``data: {"event": {...}}``) instead of
a ``chat.completion.chunk``, which is what Open WebUI listens for. Any object with a callable
``to_event_dict`` is treated the same way, so front ends may define their own event classes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class PipelineEvent(BaseModel):
    """A named UI event: ``type`` (e.g. ``status``) and a JSON-able ``data`` payload."""

    type: str
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_event_dict(self) -> dict[str, Any]:
        """The payload sent to the client as ``{"event": <this>}``."""
        return self.model_dump(mode="json")


def is_event(item: Any) -> bool:
    """True for objects the routes send as UI events rather than content."""
    return callable(getattr(item, "to_event_dict", None))
