"""The bundled examples (served by `make run`) load and answer as the README says."""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "pipelines"


async def test_examples_load_and_run(app_client, tmp_path):
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", ".hayhooks"))
    client = await app_client(target)
    status = (await client.get("/status")).json()
    assert status["failed"] == []
    assert {"greet", "search", "word_count", "prompt_chain"} <= set(status["pipelines"])
    assert (await client.post("/greet/run", json={"name": "Ada"})).json() == {
        "result": "Hello Ada, welcome to Hayhooks!"
    }
    search = (await client.post("/search/run", json={"question": "What is BM25?", "top_k": 1})).json()[
        "result"
    ]
    assert "BM25" in search["documents"][0]["content"] and "Question: What is BM25?" in search["prompt"]
    assert (
        "score" in search["documents"][0] and "meta" not in search["documents"][0]
    )  # Document.to_dict() shape
    words = await client.post(
        "/word_count/run", files=[("files", ("a.txt", b"to be or not to be"))], data={"top": "2"}
    )
    assert words.json() == {"result": {"to": 2, "be": 2}}
    chain = (await client.post("/prompt_chain/run", json={"question": "Why?", "style": "a pirate"})).json()
    assert chain == {"result": {"prompt": "Question: Why?\nAnswer in the style of a pirate."}}
