"""JSON Schemas of the Haystack dataclasses most often sent to a run method, in their ``to_dict()``
shape, so the OpenAPI document tells clients what ``from_dict`` accepts instead of "an object".

Only the parts a client needs to build are spelled out (text content for chat messages); anything
else ``from_dict`` accepts still works, it is just not advertised. Types not listed here are
documented as a plain object.
"""

from __future__ import annotations

from typing import Any

_NULLABLE_STRING = {"type": ["string", "null"]}
_OBJECT_OR_NULL = {"type": ["object", "null"]}

CHAT_MESSAGE: dict[str, Any] = {
    "type": "object",
    "title": "ChatMessage",
    "description": "Haystack ChatMessage as a dict (ChatMessage.to_dict())",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["user", "system", "assistant", "tool"]},
        "content": {
            "description": "The text, or a list of content parts (text parts shown; tool calls, "
            "tool results and images are accepted in Haystack's to_dict() form)",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["text"],
                        "properties": {"text": {"type": "string"}},
                        "additionalProperties": False,
                    },
                },
            ],
        },
        "name": _NULLABLE_STRING,
        "meta": _OBJECT_OR_NULL,
    },
    "additionalProperties": False,
}

DOCUMENT: dict[str, Any] = {
    "type": "object",
    "title": "Document",
    "description": "Haystack Document as a dict (Document.to_dict()); unknown keys go to meta. "
    "blob and sparse_embedding are accepted in their to_dict() form too",
    "properties": {
        "id": {"type": "string"},
        "content": _NULLABLE_STRING,
        "meta": _OBJECT_OR_NULL,
        "score": {"type": ["number", "null"]},
        "embedding": {"type": ["array", "null"], "items": {"type": "number"}},
    },
}

_BY_NAME = {"ChatMessage": CHAT_MESSAGE, "Document": DOCUMENT}


def haystack_schema(tp: type) -> dict[str, Any]:
    """The JSON Schema documented for a Haystack dataclass ``tp`` sent in a request."""
    known = _BY_NAME.get(tp.__name__)
    if known is not None and tp.__module__.startswith("haystack."):
        return known
    return haystack_result_schema(tp)


def haystack_result_schema(tp: type) -> dict[str, Any]:
    """The JSON Schema documented for a Haystack dataclass in a result: its ``to_dict()``, an object.

    Not the request schema: ``from_dict`` is lenient, so a result may carry back whatever a request
    put in (a ``score`` that is a string), and a documented shape must hold for every answer.
    """
    return {"type": "object", "title": tp.__name__, "description": f"Haystack {tp.__name__} as a dict"}
