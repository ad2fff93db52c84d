"""Deploy, undeploy, history and rollback routes (all admin-guarded): translate JSON to ``PipelineService`` calls, nothing more."""

from typing import Any, Optional

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from hayhooks.server.auth import require_admin

router = APIRouter(tags=["deploy"], dependencies=[Depends(require_admin)])


def install(app: FastAPI, settings: Any) -> None:
    """Add the routes; with runtime deploys disabled they still answer (403, saying why) but leave
    the OpenAPI document, so ``/docs`` does not offer operations that can never succeed."""
    app.include_router(router, include_in_schema=not settings.disable_runtime_deploy)


def deployed(result: Any) -> dict[str, Any]:
    """The deploy answer: the service's result plus ``endpoint``, which 2.x scripts read."""
    return {**result.to_dict(), "endpoint": f"/{result.name}/run"}


class DeployFilesRequest(BaseModel):
    name: str = Field(..., description="Pipeline name: letters, digits, '-' and '_'")
    files: dict[str, str] = Field(..., description="Relative path -> file content; needs pipeline_wrapper.py")
    overwrite: bool = False
    save_files: bool = True
    description: Optional[str] = Field(
        None, description="Shown in /status, OpenAPI and the MCP tool instead of the run_api docstring"
    )
    skip_mcp: Optional[bool] = Field(False, description="Keep this pipeline out of the MCP tools")


class DeployYamlRequest(BaseModel):
    name: str
    source_code: str = Field(..., description="The pipeline YAML, with inputs: and outputs: sections")
    overwrite: bool = False
    description: Optional[str] = Field(None, description="Overrides a description: in the YAML")
    # Optional as in 2.x, whose clients may send null for "the default".
    save_file: Optional[bool] = True
    skip_mcp: Optional[bool] = Field(False, description="Keep this pipeline out of the MCP tools")


class LegacyDeployRequest(BaseModel):
    name: str
    source_code: str


@router.post("/deploy-files")
@router.post("/deploy_files", include_in_schema=False)
async def deploy_files(body: DeployFilesRequest, request: Request) -> dict[str, Any]:
    service = request.app.state.service
    result = await service.deploy_files(
        body.name,
        body.files,
        body.overwrite,
        body.save_files,
        description=body.description,
        skip_mcp=bool(body.skip_mcp),
    )
    return deployed(result)


@router.post("/deploy-yaml")
@router.post("/deploy_yaml", include_in_schema=False)
async def deploy_yaml(body: DeployYamlRequest, request: Request) -> dict[str, Any]:
    service = request.app.state.service
    result = await service.deploy_yaml(
        body.name,
        body.source_code,
        body.overwrite,
        body.description,
        body.save_file is not False,
        bool(body.skip_mcp),
    )
    return deployed(result)


@router.post("/deploy")
async def deploy_legacy(body: LegacyDeployRequest, request: Request) -> dict[str, Any]:
    result = await request.app.state.service.deploy_yaml(body.name, body.source_code)
    return deployed(result)


class RollbackRequest(BaseModel):
    version: Optional[str] = Field(
        None, description="Archived version to restore (see the history route); default: the newest one"
    )


@router.get("/pipelines/{name}/history")
async def history(name: str, request: Request) -> dict[str, Any]:
    """The deployed version and the archived ones (newest first) a rollback can restore."""
    service = request.app.state.service
    versions = await run_in_threadpool(service.history, name)
    return {"name": name, "versions": versions}


@router.post("/pipelines/{name}/rollback")
async def rollback(name: str, request: Request, body: Optional[RollbackRequest] = None) -> dict[str, Any]:
    """Deploy an archived version again, with the same every-worker guarantee as a deploy."""
    result = await request.app.state.service.rollback(name, body.version if body else None)
    return result.to_dict()


@router.post("/undeploy/{name}")
async def undeploy(name: str, request: Request) -> dict[str, Any]:
    result = await request.app.state.service.undeploy(name)
    return result.to_dict()
