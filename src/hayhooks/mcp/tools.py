"""The MCP tools: the core admin/status tools and the tool of each deployed pipeline.

Split out of ``hayhooks.mcp.server`` so the tool definitions and their pure helpers (who is a tool,
its schema, who may deploy, how arguments become run kwargs) sit apart from the server and transports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import mcp_types as types
from pydantic import BaseModel, Field, model_validator

from hayhooks.errors import Forbidden
from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.security import Caller, authorize_deploy, is_admin

Transport = Literal["http", "stdio"]


# -- core tools ----------------------------------------------------------------------------------
class _NoArgs(BaseModel):
    pass


class _NameArgs(BaseModel):
    """One pipeline, named as Hayhooks 2.x clients send it (``pipeline_name``) or as ``name``.

    The advertised tool schema marks ``pipeline_name`` required (the 2.x shape, and no top-level
    ``anyOf``, which some model APIs refuse in tool schemas); the server validates with this model,
    so ``name`` keeps working for clients written against earlier versions of this server.
    """

    pipeline_name: Optional[str] = Field(None, description="Name of the pipeline.")
    name: Optional[str] = Field(None, description="Same as pipeline_name (either one is enough).")

    @model_validator(mode="after")
    def _one_name(self) -> _NameArgs:
        if not (self.pipeline_name or self.name):
            raise ValueError("give the pipeline's name as 'pipeline_name'")
        if self.pipeline_name and self.name and self.pipeline_name != self.name:
            raise ValueError("'pipeline_name' and 'name' differ; give only one of them")
        return self

    @property
    def target(self) -> str:
        """The pipeline the call is about."""
        return self.pipeline_name or self.name or ""


class _DeployArgs(BaseModel):
    name: str = Field(description="Name of the pipeline to create (or replace with overwrite).")
    files: dict[str, str] = Field(
        description="The pipeline folder as {relative path: file text}; must contain pipeline_wrapper.py."
    )
    overwrite: bool = Field(False, description="Replace an existing pipeline of the same name.")
    save_files: bool = Field(True, description="Keep the files in the pipelines directory across restarts.")


@dataclass(frozen=True)
class CoreTool:
    name: str
    description: str
    args: type[BaseModel]
    admin: bool  # deploys code: guarded like the HTTP deploy endpoints
    read_only: bool
    # Fields the advertised schema marks required when the model itself can't say it (alternatives).
    advertised_required: tuple[str, ...] = ()

    def advertised_schema(self) -> dict[str, Any]:
        schema = self.args.model_json_schema()
        if self.advertised_required:
            schema["required"] = list(self.advertised_required)
        return schema

    def tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.advertised_schema(),
            annotations=types.ToolAnnotations(
                read_only_hint=self.read_only,
                destructive_hint=None if self.read_only else True,
                open_world_hint=False,
            ),
        )


CORE_TOOLS: dict[str, CoreTool] = {
    t.name: t
    for t in (
        CoreTool(
            "get_all_pipeline_statuses",
            "Status of the server: every deployed pipeline, load failures and workers.",
            _NoArgs,
            admin=False,
            read_only=True,
        ),
        CoreTool(
            "get_pipeline_status",
            "Details of one deployed pipeline (type, capabilities, source, description), or its load error.",
            _NameArgs,
            admin=False,
            read_only=True,
            advertised_required=("pipeline_name",),
        ),
        CoreTool(
            "deploy_pipeline",
            "Deploy a pipeline from its files (a pipeline_wrapper.py plus any "
            "others). It becomes an HTTP endpoint and an MCP tool.",
            _DeployArgs,
            admin=True,
            read_only=False,
        ),
        CoreTool(
            "undeploy_pipeline",
            "Remove a deployed pipeline and its files.",
            _NameArgs,
            admin=True,
            read_only=False,
            advertised_required=("pipeline_name",),
        ),
    )
}


# -- helpers ---------------------------------------------------------------------------------------
def is_tool(pipeline: LoadedPipeline) -> bool:
    # Names of core tools are refused at deploy and load (``hayhooks.pipelines.names``).
    return pipeline.run is not None and not pipeline.skip_mcp


def pipeline_tool(pipeline: LoadedPipeline) -> types.Tool:
    """The MCP tool of a pipeline (cached on the loaded pipeline: it never changes after load)."""
    cached = pipeline.extra.get("mcp.tool")
    if cached is not None:
        return cached
    run = pipeline.run
    assert run is not None
    description = (run.description or pipeline.description or f"Run the '{pipeline.name}' pipeline.").strip()
    tool = types.Tool(
        name=pipeline.name,
        description=description,
        input_schema=run.request_model.model_json_schema(),
    )
    pipeline.extra["mcp.tool"] = tool
    return tool


def caller_of(request: Any) -> Caller:
    """Who sent an MCP request over HTTP. No request at all is treated as a remote caller without
    credentials (it should not happen over HTTP)."""
    scope = getattr(request, "scope", None)
    if not scope:
        return Caller(headers={}, client=None, server="0.0.0.0")
    return Caller.from_scope(scope)


def check_admin(settings: Any, transport: Transport, request: Any) -> None:
    """The rule of the HTTP deploy endpoints (``hayhooks.security``); raises if the caller may not deploy.

    Over stdio the client is the local user who launched the server: only the kill switch applies.
    Over HTTP the request is judged like an HTTP deploy: token, or a genuinely local request.
    """
    if transport == "stdio":
        if settings.disable_runtime_deploy:
            raise Forbidden("Runtime deploys are disabled (HAYHOOKS_DISABLE_RUNTIME_DEPLOY=true)")
        return
    authorize_deploy(settings, caller_of(request))


def sees_details(settings: Any, transport: Transport, request: Any) -> bool:
    """Whether status tools may show paths and load errors (like ``GET /status``): admins only."""
    return transport == "stdio" or is_admin(settings, caller_of(request))


def call_kwargs(pipeline: LoadedPipeline, arguments: dict[str, Any], headers: Any) -> dict[str, Any]:
    """Validate the tool arguments with the pipeline's request model -> keyword arguments of its run."""
    run = pipeline.run
    assert run is not None
    kwargs = run.arguments(run.request_model.model_validate(arguments))
    if run.files_param and run.files_param not in kwargs:
        kwargs[run.files_param] = None  # MCP has no file uploads
    if run.headers_param and run.headers_param not in kwargs:
        kwargs[run.headers_param] = dict(headers) if headers is not None else {}
    return kwargs
