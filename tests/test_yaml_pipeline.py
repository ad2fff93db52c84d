"""``YAMLPipelineWrapper``: the public class behind YAML pipelines, usable outside the server too."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import SAMPLE_PIPELINES, copy_pipelines
from haystack.dataclasses import ChatMessage

from hayhooks import BasePipelineWrapper, YAMLPipelineWrapper
from hayhooks.errors import InvalidInput, PipelineLoadError

QA = SAMPLE_PIPELINES / "qa.yml"

CHAT_YAML = textwrap.dedent(
    """
    components:
      chat:
        type: haystack.components.builders.chat_prompt_builder.ChatPromptBuilder
        init_parameters: {}
    inputs:
      messages: chat.template
      variables: chat.template_variables
    outputs:
      prompt: chat.prompt
    """
)


def test_from_file_runs_sync_and_async() -> None:
    wrapper = YAMLPipelineWrapper.from_file(QA)
    assert isinstance(wrapper, BasePipelineWrapper)
    assert wrapper.name == "qa" and wrapper.description == "Builds a prompt for a question."
    expected = {"prompt": "Question: Who? Context: c", "final": "Question: Who? Context: c (signed me)"}
    assert wrapper.run_api(question="Who?", context="c", signature="me") == expected
    import asyncio

    assert asyncio.run(wrapper.run_api_async(question="Who?", context="c", signature="me")) == expected


def test_from_yaml_builds_json_inputs_for_their_sockets() -> None:
    wrapper = YAMLPipelineWrapper.from_yaml(CHAT_YAML, "chat", description="Chat prompt")
    assert wrapper.description == "Chat prompt" and wrapper.skip_mcp is False
    out = wrapper.run_api(
        messages=[{"role": "user", "content": [{"text": "Hi {{who}}"}]}], variables={"who": "Ada"}
    )
    (message,) = out["prompt"]
    assert isinstance(message, ChatMessage) and message.text == "Hi Ada"
    # Objects pass as they are.
    out = wrapper.run_api(messages=[ChatMessage.from_user("Yo {{who}}")], variables={"who": "Bo"})
    assert out["prompt"][0].text == "Yo Bo"


def test_bad_inputs_and_bad_yaml_are_clear_errors(tmp_path: Path) -> None:
    wrapper = YAMLPipelineWrapper.from_file(QA)
    with pytest.raises(
        InvalidInput, match=r"no input 'qestion' \(its inputs: context, question, signature\)"
    ):
        wrapper.run_api(qestion="typo")
    with pytest.raises(PipelineLoadError, match="needs an 'inputs:' section"):
        YAMLPipelineWrapper.from_yaml("components: {}\noutputs: {a: b.c}\n", "broken")
    with pytest.raises(PipelineLoadError, match="unknown socket 'chat.nope'"):
        YAMLPipelineWrapper.from_yaml(CHAT_YAML.replace("chat.template_variables", "chat.nope"), "x")
    with pytest.raises(FileNotFoundError):
        YAMLPipelineWrapper.from_file(tmp_path / "missing.yml")


async def test_the_server_serves_yaml_pipelines_as_this_class(app_client, pipelines_dir) -> None:
    client = await app_client(copy_pipelines(pipelines_dir, "qa.yml"))
    loaded = client.app.state.service.registry.require("qa")
    assert type(loaded.wrapper) is YAMLPipelineWrapper and loaded.kind == "yaml"
    r = await client.post("/qa/run", json={"question": "Who?", "context": "c", "signature": "s"})
    assert r.status_code == 200 and r.json()["result"]["final"] == "Question: Who? Context: c (signed s)"
