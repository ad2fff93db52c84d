"""Value types passed along the flow: store → loader → registry → routes → executor."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import BaseModel

from hayhooks.pipelines.wrapper import BasePipelineWrapper


@dataclass(frozen=True)
class RunSpec:
    """How to call a pipeline's run method, derived once at load time (never per request)."""

    method_name: str
    is_async: bool
    request_model: type[BaseModel]
    response_model: type[BaseModel]
    description: str
    # Parameter names filled by the server rather than the JSON body.
    files_param: Optional[str] = None
    headers_param: Optional[str] = None
    # Serialises the return value without validating it (pydantic TypeAdapter of the result type).
    result_adapter: Any = None
    # Body fields, in signature order, handed to the method as keyword arguments.
    field_names: tuple[str, ...] = ()
    # What the return annotation says the route answers with: any of "json", "text" (a generator
    # streamed as text/plain), "sse" (an SSEStream) and "response" (a Starlette response as it is).
    outputs: tuple[str, ...] = ("json",)

    def arguments(self, validated: BaseModel) -> dict[str, Any]:
        """Keyword arguments of the run method from a validated request (models stay models)."""
        return {name: getattr(validated, name) for name in self.field_names}


@dataclass(frozen=True)
class PipelineSource:
    """One entry of a store snapshot: where a pipeline lives and a fingerprint of its files."""

    name: str
    kind: Literal["wrapper", "yaml"]
    path: str
    fingerprint: str
    origin: Literal["saved", "ephemeral"] = "saved"


@dataclass
class LoadedPipeline:
    name: str
    kind: Literal["wrapper", "yaml"]
    wrapper: BasePipelineWrapper
    source: PipelineSource
    capabilities: frozenset[str]  # subset of {"run", "chat", "responses", "files", "durable"}
    run: Optional[RunSpec]
    description: str
    skip_mcp: bool = False
    loaded_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        """The JSON-able details shown by ``GET /status``."""
        return {
            "name": self.name,
            "type": self.kind,
            "capabilities": sorted(self.capabilities),
            "source": self.source.path,
            "origin": self.source.origin,
            "description": self.description,
            "skip_mcp": self.skip_mcp,
            "loaded_at": self.loaded_at,
        }


@dataclass(frozen=True)
class LoadFailure:
    name: str
    source: PipelineSource
    error: str
    at: float = field(default_factory=time.time)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source.path, "error": self.error, "at": self.at}
