"""OpenAI-compatible routes: translate HTTP ↔ wrapper calls, nothing else.

Every route is registered with and without the ``/v1`` prefix. Wrapper methods run through
``service.executor`` (sync ones on its thread pool, sync generators pulled there too); results are
converted by ``hayhooks.openai.convert``. Errors use OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Optional

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from hayhooks.errors import BadRequest, HayhooksError, NotSupported, PipelineNotFound, PipelineRunError
from hayhooks.observability import observed, tag_request
from hayhooks.openai.chat import ChatAccumulator
from hayhooks.openai.convert import (
    completion_pieces,
    error_body,
    is_ready_completion,
    is_ready_response,
    new_id,
    to_plain,
)
from hayhooks.openai.responses import ResponseAccumulator, response_pieces
from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.pipelines.wrapper import implemented_method
from hayhooks.streaming.events import is_event
from hayhooks.streaming.messages import normalize_input_items

log = logging.getLogger("hayhooks")

_DONE = {"data": "[DONE]"}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def _error_type(status: int) -> tuple[str, str]:
    if status == 404:
        return "invalid_request_error", "model_not_found"
    if status == 501:
        return "invalid_request_error", "not_implemented"
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error", "unauthorized"
    if status < 500:
        return "invalid_request_error", "invalid_request"
    return "server_error", "internal_error"


def error_response(status: int, message: str, code: Optional[str] = None) -> JSONResponse:
    type_, default_code = _error_type(status)
    return JSONResponse(error_body(message, type_, code or default_code), status_code=status)


def _from_exception(model: str, exc: BaseException) -> JSONResponse:
    if isinstance(exc, HayhooksError):
        if exc.status_code >= 500:
            log.error("OpenAI route for '%s' failed: %s", model, exc.message, exc_info=exc)
        return error_response(exc.status_code, exc.message)
    log.error("Pipeline '%s' failed: %s", model, exc, exc_info=exc)
    return error_response(500, PipelineRunError.wrap(model, exc).message)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required: the name of a deployed pipeline")
    return body


# --------------------------------------------------------------------------------------------
# Calling the wrapper and iterating what it returns
# --------------------------------------------------------------------------------------------
class Handlers:
    def __init__(self, service: Any) -> None:
        self.service = service

    def _pipeline(self, model: str, capability: str, what: str) -> tuple[LoadedPipeline, str, bool]:
        pipeline = self.service.registry.get(model)
        if pipeline is None:
            raise PipelineNotFound(
                f"The model '{model}' does not exist: no pipeline of that name is deployed"
            )
        tag_request(model, "openai")
        found = implemented_method(pipeline.wrapper, capability)
        if found is None:
            raise NotSupported(f"Pipeline '{model}' does not support {what}")
        return pipeline, found[0], found[1]

    def _items(self, result: Any) -> AsyncIterator[Any]:
        """What the wrapper returned, as an async stream of items."""
        if isinstance(result, AsyncIterable):
            return self.service.executor.aiter(result)
        if isinstance(result, (list, tuple)):
            return _aiter_list(result)
        if hasattr(result, "model_dump") or is_event(result):
            return _aiter_list([result])
        if isinstance(result, Iterator) or (
            isinstance(result, Iterable) and not isinstance(result, (str, bytes, dict))
        ):
            return self.service.executor.aiter(result)
        return _aiter_list([result])

    async def _collect(self, model: str, result: Any, acc: Any, answer: Any) -> JSONResponse:
        """A non-streaming answer: feed every item to the accumulator, then answer in one body."""
        try:
            async for item in self._items(result):
                acc.feed(item)
        except Exception as exc:
            return _from_exception(model, exc)
        return JSONResponse(answer())

    # -- GET /models ---------------------------------------------------------------------------------
    async def list_models(self) -> dict[str, Any]:
        data = [
            _model_entry(p)
            for p in self.service.registry.all()
            if implemented_method(p.wrapper, "chat") or implemented_method(p.wrapper, "responses")
        ]
        return {"object": "list", "data": data}

    async def get_model(self, model: str) -> Any:
        pipeline = self.service.registry.get(model)
        if pipeline is None or not (
            implemented_method(pipeline.wrapper, "chat") or implemented_method(pipeline.wrapper, "responses")
        ):
            return error_response(404, f"The model '{model}' does not exist")
        return _model_entry(pipeline)

    # -- POST /chat/completions ----------------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Any:
        model = "?"
        try:
            body = await _json_body(request)
            model = body["model"]
            messages = body.get("messages")
            if not isinstance(messages, list):
                raise BadRequest("'messages' is required: a list of chat messages")
            pipeline, method, is_async = self._pipeline(model, "chat", "chat completions")
            result = await observed(
                self.service,
                pipeline.name,
                "openai",
                self.service.executor.call(
                    pipeline, method, is_async, model=model, messages=messages, body=body
                ),
            )
        except Exception as exc:
            return _from_exception(model, exc)

        stream_options = body.get("stream_options") or {}
        acc = ChatAccumulator(model, include_usage=bool(stream_options.get("include_usage")))
        if body.get("stream"):
            return EventSourceResponse(self._chat_events(model, result, acc))
        if is_ready_completion(result):
            return JSONResponse(to_plain(result))
        return await self._collect(model, result, acc, acc.completion)

    async def _chat_events(
        self, model: str, result: Any, acc: ChatAccumulator
    ) -> AsyncIterator[dict[str, Any]]:
        for payload in acc.start():
            yield {"data": json.dumps(payload)}
        try:
            if is_ready_completion(result):
                payloads = acc.feed_pieces(completion_pieces(result))
                for payload in payloads:
                    yield {"data": json.dumps(payload)}
            else:
                async for item in self._items(result):
                    for payload in acc.feed(item):
                        yield {"data": json.dumps(payload)}
        except Exception as exc:
            log.error("Chat stream of pipeline '%s' failed: %s", model, exc, exc_info=exc)
            yield {
                "data": json.dumps(
                    error_body(PipelineRunError.wrap(model, exc).message, "server_error", "internal_error")
                )
            }
            yield _DONE
            return
        for payload in acc.finish():
            yield {"data": json.dumps(payload)}
        yield _DONE

    # -- POST /responses -----------------------------------------------------------------------------
    async def responses(self, request: Request) -> Any:
        model = "?"
        try:
            body = await _json_body(request)
            model = body["model"]
            try:
                input_items = normalize_input_items(body.get("input"))
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            pipeline, method, is_async = self._pipeline(model, "responses", "the Responses API")
            result = await observed(
                self.service,
                pipeline.name,
                "openai",
                self.service.executor.call(
                    pipeline, method, is_async, model=model, input_items=input_items, body=body
                ),
            )
        except Exception as exc:
            return _from_exception(model, exc)

        acc = ResponseAccumulator(model, body)
        if body.get("stream"):
            return EventSourceResponse(self._response_events(model, result, acc))
        if is_ready_response(result):
            return JSONResponse(to_plain(result))
        return await self._collect(model, result, acc, acc.final)

    async def _response_events(
        self, model: str, result: Any, acc: ResponseAccumulator
    ) -> AsyncIterator[dict[str, Any]]:
        def sse(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
            return [{"event": name, "data": json.dumps(data)} for name, data in events]

        for message in sse(acc.start()):
            yield message
        try:
            if is_ready_response(result):
                for message in sse(acc.feed_pieces(response_pieces(result))):
                    yield message
            else:
                async for item in self._items(result):
                    for message in sse(acc.feed(item)):
                        yield message
        except Exception as exc:
            log.error("Response stream of pipeline '%s' failed: %s", model, exc, exc_info=exc)
            for message in sse(acc.fail(PipelineRunError.wrap(model, exc).message)):
                yield message
            yield _DONE
            return
        for message in sse(acc.finish()):
            yield message

    # -- POST /files ---------------------------------------------------------------------------------
    async def files(self, request: Request) -> Any:
        model = request.query_params.get("model") or "?"
        try:
            try:
                form = await request.form()
            except Exception:
                raise BadRequest("Expected a multipart/form-data body with a 'file' field") from None
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise BadRequest("'file' is required: the file to upload")
            purpose = form.get("purpose")
            purpose = purpose if isinstance(purpose, str) and purpose else "user_data"
            name = form.get("model") or request.query_params.get("model")
            pipeline, method, is_async = self._file_pipeline(name if isinstance(name, str) else None)
            model = pipeline.name
            content = await upload.read()
            filename = upload.filename or "upload"
            content_type = upload.content_type or "application/octet-stream"
            result = await observed(
                self.service,
                pipeline.name,
                "openai",
                self.service.executor.call(
                    pipeline,
                    method,
                    is_async,
                    filename=filename,
                    content_type=content_type,
                    content=content,
                    purpose=purpose,
                ),
            )
        except Exception as exc:
            return _from_exception(model, exc)
        return JSONResponse(_file_object(result, filename, len(content), purpose))

    def _file_pipeline(self, name: Optional[str]) -> tuple[LoadedPipeline, str, bool]:
        if name:
            return self._pipeline(name, "files", "file uploads")
        accepting = [p for p in self.service.registry.all() if implemented_method(p.wrapper, "files")]
        if not accepting:
            raise NotSupported("No deployed pipeline accepts file uploads (none implements run_file_upload)")
        if len(accepting) > 1:
            names = ", ".join(p.name for p in accepting)
            raise BadRequest(
                f"Several pipelines accept files ({names}): name one with the 'model' form field or ?model="
            )
        found = implemented_method(accepting[0].wrapper, "files")
        assert found is not None
        return accepting[0], found[0], found[1]


async def _aiter_list(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _model_entry(pipeline: LoadedPipeline) -> dict[str, Any]:
    return {
        "id": pipeline.name,
        "object": "model",
        "created": int(pipeline.loaded_at),
        "owned_by": "hayhooks",
    }


def _file_object(result: Any, filename: str, size: int, purpose: str) -> dict[str, Any]:
    import time

    result = to_plain(result)
    base: dict[str, Any] = {
        "id": new_id("file-"),
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }
    if isinstance(result, str) and result:
        base["id"] = result
    elif isinstance(result, dict):
        base.update({k: v for k, v in result.items() if v is not None})
        base["object"] = "file"
    return base


def install_routes(app: FastAPI, service: Any) -> None:
    handlers = Handlers(service)
    router = APIRouter(tags=["openai"])
    for prefix in ("/v1", ""):
        router.add_api_route(f"{prefix}/models", handlers.list_models, methods=["GET"], summary="List models")
        router.add_api_route(
            f"{prefix}/models/{{model}}", handlers.get_model, methods=["GET"], summary="Retrieve a model"
        )
        router.add_api_route(
            f"{prefix}/chat/completions",
            handlers.chat_completions,
            methods=["POST"],
            summary="Chat completion (OpenAI-compatible)",
        )
        router.add_api_route(
            f"{prefix}/responses",
            handlers.responses,
            methods=["POST"],
            summary="Create a response (OpenAI Responses API)",
        )
        router.add_api_route(f"{prefix}/files", handlers.files, methods=["POST"], summary="Upload a file")
    app.include_router(router)
