"""``coerce_pipeline_inputs``: JSON pipeline data built into the objects each socket's type names."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Union

import pytest
from conftest import copy_pipelines
from haystack import Document, Pipeline, component
from haystack.dataclasses import ChatMessage
from pydantic import BaseModel

from hayhooks import coerce_pipeline_inputs
from hayhooks.errors import InvalidInput

COMPAT = Path(__file__).parent / "fixtures" / "compat"
MESSAGE = {"role": "user", "content": [{"text": "hi"}]}


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    width: int


@component
class Sink:
    """One socket per supported shape, and a few that are left alone."""

    @component.output_types(seen=dict)
    def run(
        self,
        messages: list[ChatMessage],
        document: Optional[Document] = None,
        point: Optional[Point] = None,
        box: Optional[Box] = None,
        one_or_many: Union[ChatMessage, list[ChatMessage], None] = None,
        either: Union[ChatMessage, Document, None] = None,
        raw: Optional[dict[str, Any]] = None,
        text: str = "",
    ) -> dict[str, Any]:
        return {"seen": dict(messages=messages, document=document, point=point, box=box)}


@pytest.fixture
def pipeline() -> Pipeline:
    p = Pipeline()
    p.add_component("sink", Sink())
    return p


def test_nested_and_flat_data_get_objects_for_typed_sockets(pipeline) -> None:
    nested = {
        "sink": {
            "messages": [MESSAGE, ChatMessage.from_user("already")],
            "document": {"content": "d", "meta": {"k": 1}},
            "point": {"x": 1, "y": 2},
            "box": {"width": 3},
            "raw": {"keep": "me"},
            "text": "plain",
        }
    }
    out = coerce_pipeline_inputs(pipeline, nested)["sink"]
    assert [m.text for m in out["messages"]] == ["hi", "already"] and isinstance(
        out["messages"][0], ChatMessage
    )
    assert isinstance(out["document"], Document) and out["document"].meta == {"k": 1}
    assert out["point"] == Point(x=1, y=2) and out["box"] == Box(width=3)
    assert out["raw"] == {"keep": "me"} and out["text"] == "plain"
    assert nested["sink"]["messages"][0] == MESSAGE  # the caller's data is not modified

    flat = coerce_pipeline_inputs(pipeline, {"messages": [MESSAGE], "point": {"x": 3, "y": 4}})
    assert isinstance(flat["messages"][0], ChatMessage) and flat["point"] == Point(x=3, y=4)
    # Flat data whose values are all dicts is still flat when every key names a socket.
    assert coerce_pipeline_inputs(pipeline, {"point": {"x": 5, "y": 6}}) == {"point": Point(x=5, y=6)}
    # The result runs: Pipeline.run receives objects.
    seen = pipeline.run(coerce_pipeline_inputs(pipeline, nested))["sink"]["seen"]
    assert seen["messages"][0].text == "hi"


def test_unions_pick_by_shape_and_refuse_to_guess(pipeline) -> None:
    one = coerce_pipeline_inputs(pipeline, {"sink": {"messages": [], "one_or_many": MESSAGE}})
    many = coerce_pipeline_inputs(pipeline, {"sink": {"messages": [], "one_or_many": [MESSAGE]}})
    assert isinstance(one["sink"]["one_or_many"], ChatMessage)
    assert isinstance(many["sink"]["one_or_many"][0], ChatMessage)
    doc = Document(content="x")
    assert (
        coerce_pipeline_inputs(pipeline, {"sink": {"messages": [], "either": doc}})["sink"]["either"] is doc
    )
    with pytest.raises(InvalidInput, match=r"input 'either' of component 'sink'.*ChatMessage, Document"):
        coerce_pipeline_inputs(pipeline, {"sink": {"messages": [], "either": {"content": "x"}}})


def test_a_value_that_cannot_be_built_is_invalid_input(pipeline) -> None:
    with pytest.raises(InvalidInput, match=r"input 'point'.*cannot build Point"):
        coerce_pipeline_inputs(pipeline, {"point": {"x": "not a number"}})
    with pytest.raises(InvalidInput, match=r"input 'messages' \(item 1\).*ChatMessage"):
        coerce_pipeline_inputs(pipeline, {"messages": [MESSAGE, {"role": "nobody"}]})
    # Unknown components and sockets are left for Pipeline.run to report, unchanged.
    assert coerce_pipeline_inputs(pipeline, {"nope": {"x": {"a": 1}}}) == {"nope": {"x": {"a": 1}}}


async def test_a_2x_wrapper_coercing_json_data_serves_and_answers_422(app_client, pipelines_dir) -> None:
    client = await app_client(copy_pipelines(pipelines_dir, "coerced", source=COMPAT))
    data = {
        "chat": {
            "template": [{"role": "user", "content": [{"text": "Hello {{name}}"}]}],
            "template_variables": {"name": "Ada"},
        },
        "docs": {"documents": [{"content": "one"}, {"content": "two"}]},
    }
    r = await client.post("/coerced/run", json={"data": data})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"prompt": ["Hello Ada"], "documents": ["one", "two"]}
    data["chat"]["template"] = [{"role": "nobody", "content": []}]
    bad = await client.post("/coerced/run", json={"data": data})
    assert bad.status_code == 422 and "input 'template' of component 'chat'" in bad.json()["detail"]
