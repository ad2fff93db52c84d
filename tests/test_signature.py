from typing import Optional

from haystack import Document
from haystack.dataclasses import ChatMessage
from pydantic import BaseModel

from hayhooks.pipelines.signature import build_run_spec, jsonable


class Filters(BaseModel):
    lang: str = "en"


def test_models_from_signature_and_docstring():
    def run_api(
        self,
        query: str,
        top_k: int = 3,
        filters: Optional[Filters] = None,
        docs: list[Document] | None = None,
    ) -> list[Document]:
        """Search things.

        Longer words.

        Args:
            query: The query.
            top_k: How many.
        """

    spec = build_run_spec("my-pipe", run_api, "run_api", False)
    schema = spec.request_model.model_json_schema()
    assert schema["title"] == "MyPipeRunRequest"
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"]["description"] == "The query."
    assert spec.description == "Search things.\n\nLonger words."
    model = spec.request_model.model_validate(
        {"query": "q", "filters": {"lang": "de"}, "docs": [{"content": "c", "k": 1}]}
    )
    assert isinstance(model.filters, Filters) and model.filters.lang == "de"
    assert isinstance(model.docs[0], Document) and model.docs[0].meta == {"k": 1}
    assert spec.field_names == ("query", "top_k", "filters", "docs")
    dumped = spec.result_adapter.dump_python([Document(content="x", id="1")], mode="json")
    assert dumped[0]["content"] == "x" and dumped[0]["id"] == "1"


def test_missing_annotations_mean_untyped_not_failure():
    def run_api(self, value, other=2):
        pass

    spec = build_run_spec("p", run_api, "run_api", False)
    model = spec.request_model.model_validate({"value": {"any": ["thing"]}})
    assert model.value == {"any": ["thing"]} and model.other == 2
    assert (
        spec.result_adapter.dump_python({"m": ChatMessage.from_user("hi")}, mode="json")["m"]["role"]
        == "user"
    )


def test_jsonable_handles_haystack_and_pydantic():
    assert jsonable({"d": Document(content="x", id="1"), "f": Filters(), "t": (1, 2), "b": b"hi"})["f"] == {
        "lang": "en"
    }
    assert jsonable(object()).startswith("<object")
