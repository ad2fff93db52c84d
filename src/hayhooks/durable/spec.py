"""What the server needs to know about a wrapper's durable method, derived once per loaded version.

``check_durable`` runs when the pipeline loads (the loader calls it), so a wrapper whose durable
method cannot be called the way the server calls it fails to load, and shows in ``/status`` as
failed with a message that names the problem and the fix, and its deploy answers 422 with the same
message, instead of every submission being refused later.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel

from hayhooks.errors import NotSupported, PipelineLoadError
from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.pipelines.wrapper import CAPABILITY_METHODS, BasePipelineWrapper, implemented_method

_CACHE_KEY = "durable_spec"
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_EXAMPLE = (
    "class Request(BaseModel): ...  then  def {method}(self, context: DurableContext, request: Request)"
)


@dataclass(frozen=True)
class DurableSpec:
    method_name: str
    is_async: bool
    request_param: str
    request_model: type[BaseModel]
    resume_model: Optional[type[BaseModel]]
    revision: str
    description: str


def durable_spec(pipeline: LoadedPipeline) -> DurableSpec:
    """The pipeline's ``DurableSpec``; ``NotSupported`` (501) if it has no durable method."""
    cached = pipeline.extra.get(_CACHE_KEY)
    if cached is not None:
        return cached
    if "durable" not in pipeline.capabilities:
        raise NotSupported(
            f"Pipeline '{pipeline.name}' has no run_durable method; it serves {sorted(pipeline.capabilities)}"
        )
    return check_durable(pipeline)


def check_durable(pipeline: LoadedPipeline) -> DurableSpec:
    """Build and cache the spec of a pipeline that has a durable method; ``PipelineLoadError``
    (the pipeline does not load) when that method or the durable class attributes are unusable."""
    found = implemented_method(pipeline.wrapper, "durable")
    if found is None:
        raise NotSupported(f"Pipeline '{pipeline.name}' has no run_durable method")
    spec = build_spec(pipeline.name, pipeline.wrapper, *found)
    pipeline.extra[_CACHE_KEY] = spec
    return spec


def build_spec(name: str, wrapper: Any, method_name: str, is_async: bool) -> DurableSpec:
    sync_name, async_name = CAPABILITY_METHODS["durable"]
    cls = type(wrapper)
    if all(
        getattr(cls, m, None) is not getattr(BasePipelineWrapper, m, None) for m in (sync_name, async_name)
    ):
        raise PipelineLoadError(
            f"Pipeline '{name}': PipelineWrapper defines both {sync_name} and {async_name}; "
            f"keep only one of them (the server would silently call {async_name})"
        )
    method = getattr(wrapper, method_name)
    request_param, request_model = _request_model(name, method, method_name)
    return DurableSpec(
        method_name=method_name,
        is_async=is_async,
        request_param=request_param,
        request_model=request_model,
        resume_model=_resume_model(name, wrapper),
        revision=_revision(name, wrapper),
        description=inspect.getdoc(method) or f"Start a durable execution of '{name}'",
    )


def _request_model(name: str, method: Any, method_name: str) -> tuple[str, type[BaseModel]]:
    """The server calls ``method(context, request)``: two positional parameters, the second
    annotated with the pydantic model that validates ``run-durable`` bodies and documents them."""
    where = f"Pipeline '{name}': {method_name}"
    example = _EXAMPLE.format(method=method_name)
    params = list(inspect.signature(method).parameters.values())
    positional = [p for p in params if p.kind in _POSITIONAL]
    if len(positional) < 2:
        found = ", ".join(p.name for p in params) or "nothing"
        raise PipelineLoadError(
            f"{where} must take (context, request), it takes ({found}); declare: {example}"
        )
    extra = [
        p.name
        for p in params
        if p not in positional[:2]
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if extra:
        raise PipelineLoadError(
            f"{where} is called with (context, request) only, but also requires {extra}; "
            "give them default values or remove them"
        )
    param = positional[1]
    try:
        hints = typing.get_type_hints(method)
    except Exception as exc:
        raise PipelineLoadError(
            f"{where}: the annotations cannot be resolved ({type(exc).__name__}: {exc}); "
            f"import the request model at module level: {example}"
        ) from exc
    annotation = hints.get(param.name)
    if annotation is None:
        raise PipelineLoadError(
            f"{where}: parameter '{param.name}' has no annotation; annotate it with a pydantic "
            f"model, which validates run-durable bodies: {example}"
        )
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        shown = getattr(annotation, "__name__", None) or repr(annotation)
        raise PipelineLoadError(
            f"{where}: parameter '{param.name}' is annotated with {shown}, not a pydantic model; "
            f"annotate it with a BaseModel subclass: {example}"
        )
    return param.name, annotation


def _resume_model(name: str, wrapper: Any) -> Optional[type[BaseModel]]:
    model = getattr(wrapper, "durable_resume_model", None)
    if model is None or (isinstance(model, type) and issubclass(model, BaseModel)):
        return model
    raise PipelineLoadError(
        f"Pipeline '{name}': durable_resume_model is {model!r}, not a pydantic model class; set it to "
        "a BaseModel subclass (the class, not an instance) or leave it out"
    )


def _revision(name: str, wrapper: Any) -> str:
    """A string; an int (a build number) is accepted and kept as its string."""
    revision = getattr(wrapper, "durable_revision", "")
    if isinstance(revision, bool) or not isinstance(revision, (str, int)):
        raise PipelineLoadError(
            f"Pipeline '{name}': durable_revision is {revision!r} ({type(revision).__name__}); set it to "
            'a string such as a Git SHA or an image digest: durable_revision = "2026-12-01"'
        )
    return str(revision)
