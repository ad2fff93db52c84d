"""Request and response models derived from a run method's signature and docstring.

Everything here runs once, at load time, so a request only pays for one pydantic validation of its
body and one serialisation of its result.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Optional, Union, get_args, get_origin

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, TypeAdapter, create_model
from pydantic.functional_validators import BeforeValidator
from pydantic.json_schema import WithJsonSchema

from hayhooks.pipelines.haystack_schemas import haystack_result_schema, haystack_schema
from hayhooks.pipelines.models import RunSpec
from hayhooks.pipelines.sse import SSEStream

_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)


def jsonable(value: Any) -> Any:
    """Turn a result of unknown type into JSON-able data, honouring Haystack's ``to_dict``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return jsonable(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if _is_plain(value) else str(value)


def _is_plain(value: Any) -> bool:
    try:
        TypeAdapter(type(value)).dump_python(value, mode="json")
        return True
    except Exception:
        return False


_ANY_JSON = Annotated[Any, PlainSerializer(jsonable, when_used="always")]


# Unparameterised containers hold values of any type: serialise those the way untyped results are.
_BARE_CONTAINERS: dict[Any, Any] = {dict: dict[str, _ANY_JSON], list: list[_ANY_JSON], tuple: list[_ANY_JSON]}


def _is_haystack_dataclass(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and dataclasses.is_dataclass(tp)
        and callable(getattr(tp, "from_dict", None))
        and callable(getattr(tp, "to_dict", None))
    )


def _haystack_type(tp: type) -> Any:
    """Haystack dataclasses travel in their ``to_dict()`` JSON shape."""

    def parse(value: Any) -> Any:
        if isinstance(value, tp):
            return value
        # Only ValueError becomes a 422: anything else ``from_dict`` raises on a malformed value
        # (TypeError, AttributeError, KeyError) would otherwise surface as a 500.
        if not isinstance(value, dict):
            raise ValueError(f"{tp.__name__} must be an object (its to_dict() form)")
        try:
            return tp.from_dict(value)  # type: ignore[attr-defined]
        except Exception as exc:
            raise ValueError(f"Invalid {tp.__name__}: {exc}") from None

    return Annotated[
        Any,
        BeforeValidator(parse),
        PlainSerializer(lambda v: v.to_dict() if isinstance(v, tp) else jsonable(v)),  # type: ignore[attr-defined]
        WithJsonSchema(haystack_schema(tp), mode="validation"),
        WithJsonSchema(haystack_result_schema(tp), mode="serialization"),
    ]


def adapt_type(tp: Any) -> Any:
    """Map an annotation to one pydantic can validate from JSON and describe in OpenAPI."""
    if tp is inspect.Parameter.empty or tp is Any or tp is None:
        return _ANY_JSON if tp is not None else type(None)
    if isinstance(tp, typing.TypeVar):
        return _ANY_JSON
    if _is_haystack_dataclass(tp):
        return _haystack_type(tp)
    if tp in _BARE_CONTAINERS:
        return _BARE_CONTAINERS[tp]
    origin = get_origin(tp)
    if origin is None:
        return tp if _schema_ok(tp) else _ANY_JSON
    args = get_args(tp)
    if origin is Annotated:
        # Constraints (Field(min_length=1), ...) stay; what they annotate is adapted like any type,
        # so Annotated[list[ChatMessage], ...] still takes messages in their to_dict() form.
        inner, *metadata = typing.get_args(tp)
        return Annotated.__class_getitem__((adapt_type(inner), *metadata))  # type: ignore[attr-defined]
    if origin in _UNION_TYPES:
        return Union[tuple(adapt_type(a) for a in args)]  # type: ignore[return-value]
    if origin in (list, set, frozenset, tuple, dict) or origin.__module__ == "collections.abc":
        if not args:
            return tp
        try:
            adapted = (
                origin[tuple(adapt_type(a) if a is not Ellipsis else a for a in args)]
                if origin is not typing.Literal
                else tp
            )
            return adapted if _schema_ok(adapted) else _ANY_JSON
        except TypeError:
            return _ANY_JSON
    return tp if _schema_ok(tp) else _ANY_JSON


def _schema_ok(tp: Any) -> bool:
    try:
        TypeAdapter(tp).json_schema()
        return True
    except Exception:
        return False


def _is_named(tp: Any, class_name: str) -> bool:
    """Match UploadFile / Headers from fastapi or starlette without importing FastAPI here."""
    for candidate in [tp, *get_args(tp)]:
        for arg in [candidate, *get_args(candidate)]:
            if isinstance(arg, type) and any(
                c.__name__ == class_name and c.__module__.split(".")[0] in ("starlette", "fastapi")
                for c in arg.__mro__
            ):
                return True
    return False


def build_run_spec(
    pipeline_name: str, method: Callable[..., Any], method_name: str, is_async: bool
) -> RunSpec:
    sig = inspect.signature(method)
    try:
        hints = typing.get_type_hints(method, include_extras=True)
    except Exception:
        hints = {}
    doc = docstring_parser.parse(inspect.getdoc(method) or "")
    param_docs = {p.arg_name: p.description for p in doc.params}
    description = "\n\n".join(x for x in (doc.short_description, doc.long_description) if x) or (
        f"Run the '{pipeline_name}' pipeline"
    )

    fields: dict[str, Any] = {}
    files_param = headers_param = None
    for name, param in sig.parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, param.annotation)
        if _is_named(annotation, "UploadFile"):
            files_param = name
            continue
        if _is_named(annotation, "Headers") or (name == "headers" and annotation is inspect.Parameter.empty):
            headers_param = name
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        field_type = adapt_type(annotation)
        fields[name] = (field_type, Field(default, description=param_docs.get(name)))

    title = _model_title(pipeline_name)
    request_model = create_model(  # type: ignore[call-overload]
        f"{title}RunRequest", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
    )
    return_type = hints.get("return", sig.return_annotation)
    outputs = output_kinds(method, return_type)
    result_type = adapt_type(return_type)
    response_model = create_model(
        f"{title}RunResponse",
        result=(result_type, Field(..., description=doc.returns.description if doc.returns else None)),
    )
    return RunSpec(
        method_name=method_name,
        is_async=is_async,
        request_model=request_model,
        response_model=response_model,
        description=description,
        files_param=files_param,
        headers_param=headers_param,
        result_adapter=TypeAdapter(result_type),
        field_names=tuple(fields),
        outputs=outputs,
    )


# Return types whose values the run route streams (see ``hayhooks.server.responses.respond``).
_STREAMED_ORIGINS = (
    collections.abc.Generator,
    collections.abc.Iterator,
    collections.abc.AsyncGenerator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
)
_OUTPUT_ORDER = ("json", "text", "sse", "response")


def output_kinds(method: Callable[..., Any], return_type: Any) -> tuple[str, ...]:
    """What a run method's return annotation says the run route will answer with.

    ``json`` (a ``{"result": ...}`` body), ``text`` (a generator streamed as ``text/plain``),
    ``sse`` (an ``SSEStream``, ``text/event-stream``) or ``response`` (a Starlette response passed
    through as it is). A union may allow several; without an annotation a generator function is
    ``text`` and anything else is taken to be JSON, as before.
    """
    if return_type is inspect.Parameter.empty:
        streams = inspect.isgeneratorfunction(method) or inspect.isasyncgenfunction(method)
        return ("text",) if streams else ("json",)
    kinds: set[str] = set()
    for arm in get_args(return_type) if get_origin(return_type) in _UNION_TYPES else (return_type,):
        kinds |= _arm_kinds(arm)
    return tuple(k for k in _OUTPUT_ORDER if k in kinds)


def _arm_kinds(tp: Any) -> set[str]:
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    base = get_origin(tp) or tp
    if isinstance(base, type) and issubclass(base, SSEStream):
        return {"sse"}
    if base in _STREAMED_ORIGINS:
        return {"text"}
    if base is collections.abc.Iterable:  # a list (JSON) or a generator (streamed): either
        return {"json", "text"}
    if _is_named(tp, "Response"):
        return {"response"}
    return {"json"}


def build_io_spec(
    pipeline_name: str,
    method_name: str,
    inputs: dict[str, tuple[Any, Any]],
    outputs: dict[str, Any],
    description: str,
) -> RunSpec:
    """The same models for a YAML pipeline, from its declared inputs and outputs."""
    title = _model_title(pipeline_name)
    fields = {name: (adapt_type(tp), Field(default)) for name, (tp, default) in inputs.items()}
    request_model = create_model(f"{title}RunRequest", **fields)  # type: ignore[call-overload]
    out_fields = {name: (Optional[adapt_type(tp)], Field(None)) for name, tp in outputs.items()}
    result_model = create_model(f"{title}Result", **out_fields)  # type: ignore[call-overload]
    result_type = dict[str, _ANY_JSON] if not out_fields else result_model
    response_model = create_model(f"{title}RunResponse", result=(result_type, ...))
    return RunSpec(
        method_name=method_name,
        is_async=False,
        request_model=request_model,
        response_model=response_model,
        description=description,
        result_adapter=TypeAdapter(dict[str, _ANY_JSON]),
        field_names=tuple(fields),
    )


def _model_title(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_")) or "Pipeline"
