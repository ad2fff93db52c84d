"""Keyword search over an in-memory document store, then a prompt built from what was found."""

from typing import Annotated

from haystack import Document, Pipeline
from haystack.components.builders import PromptBuilder
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from pydantic import Field

from hayhooks import BasePipelineWrapper

from .documents import FACTS

TEMPLATE = """Answer the question using the context.
Context:
{% for doc in documents %}- {{ doc.content }}
{% endfor %}
Question: {{ question }}"""


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        store = InMemoryDocumentStore()
        store.write_documents([Document(content=fact) for fact in FACTS])
        self.pipeline = Pipeline()
        self.pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store))
        self.pipeline.add_component(
            "prompt_builder", PromptBuilder(template=TEMPLATE, required_variables=["question"])
        )
        self.pipeline.connect("retriever.documents", "prompt_builder.documents")

    # Constraints in the annotations are checked before the pipeline runs (a 422 naming the field
    # instead of a 500 from the retriever) and shown in the OpenAPI document.
    def run_api(
        self,
        question: Annotated[str, Field(min_length=1, pattern=r"\S")],
        top_k: Annotated[int, Field(ge=1, le=20)] = 2,
    ) -> dict:
        """Retrieve the documents that best match a question and build an LLM prompt from them.

        Args:
            question: What you want to know.
            top_k: How many documents to retrieve.

        Returns:
            The retrieved documents and the prompt an LLM would receive.
        """
        result = self.pipeline.run(
            {"retriever": {"query": question, "top_k": top_k}, "prompt_builder": {"question": question}},
            include_outputs_from={"retriever"},
        )
        return {"documents": result["retriever"]["documents"], "prompt": result["prompt_builder"]["prompt"]}
