"""A wrapper whose durable method the server cannot call fails when it loads (``/status`` lists it
as failed, its deploy answers 422), with a message naming the problem and the fix; a real uvicorn
server on loopback serves every case."""

from __future__ import annotations

from pathlib import Path

import httpx

HEADER = (
    "from pydantic import BaseModel\n"
    "from hayhooks import BasePipelineWrapper, DurableContext\n"
    "class Ask(BaseModel):\n"
    "    q: str\n"
    "class PipelineWrapper(BasePipelineWrapper):\n"
    "    def setup(self) -> None:\n"
    "        pass\n"
)

# name -> (class body, fragments the load error must contain: the problem and the fix)
BROKEN: dict[str, tuple[str, list[str]]] = {
    "no_request": (
        "    def run_durable(self, context: DurableContext) -> dict:\n        return {}\n",
        ["run_durable must take (context, request)", "it takes (context)", "request: Request"],
    ),
    "unannotated": (
        "    def run_durable(self, context, request) -> dict:\n        return {}\n",
        ["parameter 'request' has no annotation", "annotate it with a pydantic model"],
    ),
    "dict_request": (
        "    def run_durable(self, context: DurableContext, request: dict) -> dict:\n        return {}\n",
        ["annotated with dict, not a pydantic model", "BaseModel subclass"],
    ),
    "both_methods": (
        "    def run_durable(self, context: DurableContext, request: Ask) -> dict:\n        return {}\n"
        "    async def run_durable_async(self, context: DurableContext, request: Ask) -> dict:\n"
        "        return {}\n",
        ["defines both run_durable and run_durable_async", "keep only one"],
    ),
    "extra_required": (
        "    def run_durable(self, context: DurableContext, request: Ask, user: str) -> dict:\n"
        "        return {}\n",
        ["also requires ['user']", "default values"],
    ),
    "bad_resume": (
        "    durable_resume_model = dict\n"
        "    def run_durable(self, context: DurableContext, request: Ask) -> dict:\n        return {}\n",
        ["durable_resume_model is <class 'dict'>, not a pydantic model class", "BaseModel subclass"],
    ),
    "bad_revision": (
        "    durable_revision = 1.5\n"
        "    def run_durable(self, context: DurableContext, request: Ask) -> dict:\n        return {}\n",
        ["durable_revision is 1.5 (float)", "set it to a string"],
    ),
    "unresolvable": (
        "    def run_durable(self, context: DurableContext, request: 'Missing') -> dict:\n"
        "        return {}\n",
        ["annotations cannot be resolved", "NameError", "import the request model"],
    ),
}

GOOD = (
    "    durable_revision = 42\n"
    "    def run_api(self, q: str) -> str:\n        return q\n"
    "    def run_durable(self, context: DurableContext, request: Ask, hint: str = '') -> dict:\n"
    "        return {'answer': request.q.upper()}\n"
)


def write(folder: Path, body: str) -> dict[str, str]:
    files = {"pipeline_wrapper.py": HEADER + body}
    folder.mkdir(parents=True)
    (folder / "pipeline_wrapper.py").write_text(files["pipeline_wrapper.py"])
    return files


def test_bad_durable_wrappers_fail_at_load_and_at_deploy(live_app, pipelines_dir: Path) -> None:
    for name, (body, _) in BROKEN.items():
        write(pipelines_dir / name, body)
    # A run_api beside a broken run_durable does not save the pipeline: it fails as a whole.
    write(
        pipelines_dir / "half_broken",
        BROKEN["dict_request"][0] + "    def run_api(self) -> str:\n        return 'x'\n",
    )
    write(pipelines_dir / "good", GOOD)
    server = live_app(pipelines_dir, durable_poll_interval_seconds=0.05)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        status = client.get("/status").json()
        assert status["pipelines"] == ["good"]
        failed = {f["name"]: f["error"] for f in status["failed"]}
        assert set(failed) == {*BROKEN, "half_broken"}
        for name, (_, fragments) in BROKEN.items():
            for fragment in fragments:
                assert fragment in failed[name], (name, failed[name])
        assert "not a pydantic model" in failed["half_broken"]
        assert client.post("/half_broken/run", json={}).status_code == 404
        assert client.post("/no_request/run-durable", json={}).status_code == 404

        # The deploy of each broken wrapper is refused with the same message, and serves nothing.
        for name, (body, fragments) in BROKEN.items():
            files = {"pipeline_wrapper.py": HEADER + body}
            r = client.post("/deploy-files", json={"name": f"deployed_{name}", "files": files})
            assert r.status_code == 422, (name, r.text)
            detail = r.json()["detail"]
            assert all(f in detail for f in fragments), (name, detail)
            assert f"deployed_{name}" not in client.get("/status").json()["pipelines"]

        # The good one: an int revision is kept as its string, optional extra parameters are fine.
        started = client.post("/good/run-durable", json={"q": "hi"})
        assert started.status_code == 202, started.text
        assert started.json()["revision"] == "42"
        assert client.post("/good/run-durable", json={"nope": 1}).status_code == 422  # body validation stays


def test_a_broken_redeploy_keeps_the_good_version(live_app, pipelines_dir: Path) -> None:
    files = write(pipelines_dir / "svc", GOOD)
    server = live_app(pipelines_dir)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        broken = {
            "pipeline_wrapper.py": files["pipeline_wrapper.py"].replace("request: Ask,", "request: dict,")
        }
        r = client.post("/deploy-files", json={"name": "svc", "files": broken, "overwrite": True})
        assert r.status_code == 422 and "annotated with dict" in r.json()["detail"], r.text
        assert client.post("/svc/run", json={"q": "still"}).json()["result"] == "still"
