"""A model that lacks the method an OpenAI route needs is refused once, not retried by the client.

The official ``openai`` client retries 408, 409, 429 and 5xx answers (twice by default), so a 501
costs three requests and three error lines for one call. The answer is a 404 in OpenAI's error
shape, which it does not retry: counted here on the server, from its access log.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from conftest import copy_pipelines, wait_until

pytestmark = pytest.mark.e2e

OPENAI_PIPELINES = Path(__file__).parents[1] / "fixtures" / "openai_pipelines"
CHAT_ONLY = """
from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        pass

    def run_chat_completion(self, model: str, messages: list, body: dict) -> str:
        return "hello"
"""


def _requests(log: str, path: str) -> int:
    return log.count(f'"POST {path} HTTP/1.1"')


def test_official_client_does_not_retry_a_model_without_the_method(hayhooks_server, pipelines_dir):
    copy_pipelines(pipelines_dir, "plain", source=OPENAI_PIPELINES)  # run_api only
    (pipelines_dir / "chat_only").mkdir()
    (pipelines_dir / "chat_only" / "pipeline_wrapper.py").write_text(CHAT_ONLY)
    server = hayhooks_server(pipelines_dir)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=2, timeout=30)

    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="plain", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404
    assert err.value.body["code"] == "model_not_supported" and err.value.body["param"] == "model"
    assert "plain" in err.value.body["message"]

    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="chat_only", input="hi")
    assert err.value.body["code"] == "model_not_supported"

    # One request each reached the server: the access log has them (it is written asynchronously).
    wait_until(lambda: _requests(server.log(), "/v1/responses") >= 1, timeout=10)
    assert _requests(server.log(), "/v1/chat/completions") == 1, server.log()
    assert _requests(server.log(), "/v1/responses") == 1, server.log()
