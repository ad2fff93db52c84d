"""What the server needs to know about a wrapper's durable method, derived once per loaded version."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, create_model

from hayhooks.errors import NotSupported, PipelineLoadError
from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.pipelines.wrapper import implemented_method

_CACHE_KEY = "durable_spec"


@dataclass(frozen=True)
class DurableSpec:
    method_name: str
    is_async: bool
    request_param: str
    request_model: type[BaseModel]
    resume_model: Optional[type[BaseModel]]
    revision: str
    description: str


class _AnyRequest(BaseModel):
    model_config = ConfigDict(extra="allow")


def durable_spec(pipeline: LoadedPipeline) -> DurableSpec:
    """The pipeline's ``DurableSpec``; ``NotSupported`` (501) if it has no durable method."""
    cached = pipeline.extra.get(_CACHE_KEY)
    if cached is not None:
        return cached
    found = implemented_method(pipeline.wrapper, "durable")
    if found is None:
        raise NotSupported(
            f"Pipeline '{pipeline.name}' has no run_durable method; it serves {sorted(pipeline.capabilities)}"
        )
    method_name, is_async = found
    spec = build_spec(pipeline.name, pipeline.wrapper, method_name, is_async)
    pipeline.extra[_CACHE_KEY] = spec
    return spec


def build_spec(name: str, wrapper: Any, method_name: str, is_async: bool) -> DurableSpec:
    method = getattr(wrapper, method_name)
    params = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
    if len(params) < 2:
        raise PipelineLoadError(
            f"Pipeline '{name}': {method_name} must take (context: DurableContext, request: <pydantic model>)"
        )
    try:
        hints = typing.get_type_hints(method)
    except Exception:
        hints = {}
    request_param = params[1].name
    annotation = hints.get(request_param, params[1].annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        request_model: type[BaseModel] = annotation
    else:
        title = "".join(part.capitalize() for part in name.replace("-", "_").split("_")) or "Pipeline"
        request_model = create_model(f"{title}DurableRequest", __base__=_AnyRequest)
    resume_model = getattr(wrapper, "durable_resume_model", None)
    if resume_model is not None and not (
        isinstance(resume_model, type) and issubclass(resume_model, BaseModel)
    ):
        raise PipelineLoadError(f"Pipeline '{name}': durable_resume_model must be a pydantic model class")
    revision = getattr(wrapper, "durable_revision", "")
    if not isinstance(revision, str):
        raise PipelineLoadError(f"Pipeline '{name}': durable_revision must be a string")
    doc = inspect.getdoc(method) or f"Start a durable execution of '{name}'"
    return DurableSpec(method_name, is_async, request_param, request_model, resume_model, revision, doc)
