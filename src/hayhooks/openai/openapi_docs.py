"""How the OpenAI-compatible routes appear in ``/openapi.json``.

The handlers read their JSON bodies themselves (they accept whatever extra fields OpenAI clients
send), so FastAPI cannot see the bodies: they are described here, with the statuses the routes
answer and OpenAI's ``{"error": {...}}`` shape, so generated clients and fuzzers know the contract.
Only the fields the routes themselves check are constrained; the rest goes to the pipeline.
"""

from __future__ import annotations

from typing import Any

from hayhooks.server.openapi_errors import SSE_EVENT_SCHEMA

OPENAI_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "invalid_request_error, server_error, ..."},
                "param": {"type": ["string", "null"]},
                "code": {
                    "type": ["string", "null"],
                    "description": "model_not_found, model_not_supported, ...",
                },
            },
        }
    },
}

_MODEL = {"type": "string", "minLength": 1, "description": "The name of a deployed pipeline"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": OPENAI_ERROR}}}


_RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Invalid request body"),
    404: _error("No such model, or the pipeline does not implement this endpoint (code model_not_supported)"),
    413: _error("Request body too large"),
    500: _error("The pipeline failed"),
    503: _error("Overloaded: retry later"),
    504: _error("The run took longer than the request timeout"),
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _object_or_stream(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": f"{description}, or Server-Sent Events when `stream` is true",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"itemSchema": SSE_EVENT_SCHEMA},
            },
        },
        **_RUN_ERRORS,
    }


CHAT_COMPLETIONS: dict[str, Any] = {
    "openapi_extra": _json_body(
        {
            "type": "object",
            "required": ["model", "messages"],
            "properties": {
                "model": _MODEL,
                "messages": {"type": "array", "items": {"type": "object"}, "description": "Chat messages"},
                "stream": {"type": "boolean", "default": False},
                "stream_options": {
                    "type": ["object", "null"],
                    "properties": {"include_usage": {"type": "boolean"}},
                },
            },
        }
    ),
    "responses": _object_or_stream("A chat.completion object"),
}

RESPONSES: dict[str, Any] = {
    "openapi_extra": _json_body(
        {
            "type": "object",
            "required": ["model"],
            "properties": {
                "model": _MODEL,
                "input": {
                    "description": "A user message, or a list of input items",
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
                        {"type": "null"},
                    ],
                },
                "stream": {"type": "boolean", "default": False},
            },
        }
    ),
    "responses": _object_or_stream("A response object"),
}

FILES: dict[str, Any] = {
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string"},
                            "model": {
                                "type": "string",
                                "description": "The pipeline to upload to, when several accept files",
                            },
                        },
                    }
                }
            },
        }
    },
    "responses": {
        200: {
            "description": "A file object",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **_RUN_ERRORS,
    },
}

GET_MODEL: dict[str, Any] = {"responses": {404: _error("No such model")}}
