"""``GET /draw/{name}``: the pipeline graph as Mermaid text, rendered locally (never a web service)."""

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from hayhooks.errors import NotSupported
from hayhooks.pipelines.graph import mermaid_text
from hayhooks.server.openapi_errors import NOT_FOUND, error

router = APIRouter(tags=["status"])


@router.get(
    "/draw/{name}",
    response_class=PlainTextResponse,
    responses={**NOT_FOUND, 501: error("The pipeline has no Haystack pipeline to draw")},
)
async def draw(name: str, request: Request) -> PlainTextResponse:
    pipeline = request.app.state.service.registry.require(name)
    text = mermaid_text(pipeline.wrapper)
    if text is None:
        raise NotSupported(f"Pipeline '{name}' has no Haystack pipeline (self.pipeline) to draw")
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")
