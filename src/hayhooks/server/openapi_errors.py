"""The error answers the OpenAPI document promises: one schema for every ``{"detail": ...}`` body
(what ``hayhooks.server.errors`` sends), and the statuses each group of routes can answer.

Clients and generated SDKs rely on these: an answer whose status or shape is not in the document is
a contract broken, whether or not the request was wrong.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA_NAME = "ErrorResponse"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "description": "What went wrong: a message, or the list of validation errors for a 422",
        },
        "component": {"type": "string", "description": "The Haystack component that failed, when known"},
        "traceback": {"type": "string", "description": "Only with HAYHOOKS_SHOW_TRACEBACKS=true"},
    },
}
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}

# One Server-Sent Event, as FastAPI documents its own SSE routes: under ``itemSchema`` (the Open
# API 3.2 keyword for one item of a stream), since ``schema`` would describe the whole body.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string", "description": "`error` when the stream failed midway"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def error(description: str, retry_after: bool = False) -> dict[str, Any]:
    """One error response object for an operation's ``responses``."""
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}
        }
    return response


# FastAPI-style ``responses=`` for routes that look a pipeline up by name.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("No pipeline of that name")}

DEPLOY_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["success", "name", "action", "generation", "workers"],
    "properties": {
        "success": {"type": "boolean"},
        "name": {"type": "string"},
        "action": {"type": "string", "description": "What happened: deployed, updated, undeployed, ..."},
        "generation": {"type": "integer", "description": "Store generation that contains the change"},
        "workers": {"type": "integer", "description": "Live workers that confirmed serving it"},
        "lagging": {"type": "array", "items": {"type": "string"}, "description": "Workers that did not"},
        "saved": {"type": "boolean", "description": "Whether the files stay in the pipelines directory"},
        "endpoint": {"type": "string", "description": "The run route of the pipeline"},
    },
}

# Deploy routes execute code, so fuzzers leave them out: their documented answers are set here,
# by tag, rather than in the route module, and must match what the service raises.
_ADMIN_ERRORS: dict[str, str] = {
    "401": "A deploy token is configured and the request did not send it",
    "403": "Deploys are disabled, or only allowed from the local machine",
    "503": "The pipelines directory cannot be written",
    "504": "Saved, but not every live worker confirmed serving it in time",
}
_DEPLOY_ERRORS: dict[str, str] = {
    **_ADMIN_ERRORS,
    "409": "A pipeline of that name exists (deploy without overwrite)",
    "413": "Request body too large",
    "422": "Invalid name, files or YAML, or the pipeline failed to load (its error in detail)",
}
_UNDEPLOY_ERRORS: dict[str, str] = {
    **_ADMIN_ERRORS,
    "404": "No pipeline of that name",
    "422": "Invalid pipeline name",
}


def document_fixed_routes(paths: dict[str, Any]) -> None:
    """Complete the answers of the deploy routes in a generated document (in place)."""
    for path, item in paths.items():
        # Undeploy, history and rollback name an existing pipeline: 404 when there is none.
        errors = _UNDEPLOY_ERRORS if path.startswith(("/undeploy", "/pipelines/")) else _DEPLOY_ERRORS
        for operation in item.values():
            if not isinstance(operation, dict) or "deploy" not in operation.get("tags", ()):
                continue
            responses = operation.setdefault("responses", {})
            ok = responses.get("200")
            if ok is not None:
                ok["content"] = {"application/json": {"schema": DEPLOY_RESULT}}
            for status, description in errors.items():
                responses[status] = error(description)
