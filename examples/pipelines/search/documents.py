"""A tiny offline corpus, so the example needs no network and no API key."""

FACTS = [
    "Haystack is an open-source framework for building LLM applications, RAG pipelines and agents.",
    "A Haystack pipeline connects components such as retrievers, prompt builders and generators.",
    "Hayhooks serves Haystack pipelines as REST APIs, OpenAI-compatible chat endpoints and MCP tools.",
    "BM25 is a ranking function that scores documents by term frequency and inverse document frequency.",
    "The InMemoryDocumentStore keeps documents in memory and supports BM25 and embedding retrieval.",
    "Uvicorn is a lightning-fast ASGI server; FastAPI is a web framework built on Starlette and pydantic.",
]
