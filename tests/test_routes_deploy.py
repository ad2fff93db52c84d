"""Runtime deploys through HTTP: atomic, validated, archived, protected."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import pytest
from conftest import BROKEN_PIPELINES, SAMPLE_PIPELINES, copy_pipelines, read_folder

ECHO_FILES = read_folder(SAMPLE_PIPELINES / "echo")


def wrapper_returning(value: str) -> dict[str, str]:
    return {
        "pipeline_wrapper.py": (
            "from hayhooks import BasePipelineWrapper\n"
            "class PipelineWrapper(BasePipelineWrapper):\n"
            "    def setup(self) -> None:\n        pass\n"
            f"    def run_api(self) -> str:\n        return {value!r}\n"
        )
    }


async def test_deploy_run_undeploy_cycle(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    r = await client.post("/deploy-files", json={"name": "greet", "files": ECHO_FILES})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["name"] == "greet" and r.json()["action"] == "deployed"
    assert (pipelines_dir / "greet" / "pipeline_wrapper.py").is_file()
    assert (await client.post("/greet/run", json={"name": "Bo"})).json() == {"result": "Hello Bo!"}
    assert "/greet/run" in (await client.get("/openapi.json")).json()["paths"]
    assert "greet" in (await client.get("/status")).json()["pipelines"]

    r = await client.post("/undeploy/greet")
    assert r.status_code == 200, r.text
    assert (await client.post("/greet/run", json={"name": "Bo"})).status_code == 404
    assert "/greet/run" not in (await client.get("/openapi.json")).json()["paths"]
    assert not (pipelines_dir / "greet").exists()
    archived = list((pipelines_dir / ".hayhooks" / "archive").glob("greet/*/greet/pipeline_wrapper.py"))
    assert len(archived) == 1, "undeploy must keep the user's files in the archive"


async def test_deploy_files_alias_and_nested_files(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    files = {
        "pipeline_wrapper.py": "from hayhooks import BasePipelineWrapper\nfrom .lib.helper import X\n"
        "class PipelineWrapper(BasePipelineWrapper):\n    def setup(self): pass\n"
        "    def run_api(self) -> str:\n        return X\n",
        "lib/__init__.py": "",
        "lib/helper.py": "X = 'nested'\n",
    }
    r = await client.post("/deploy_files", json={"name": "nested", "files": files})
    assert r.status_code == 200, r.text
    assert (await client.post("/nested/run", json={})).json() == {"result": "nested"}


async def test_duplicate_deploy_is_409_and_overwrite_replaces(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    assert (
        await client.post("/deploy-files", json={"name": "v", "files": wrapper_returning("one")})
    ).status_code == 200
    dup = await client.post("/deploy-files", json={"name": "v", "files": wrapper_returning("two")})
    assert dup.status_code == 409 and "already exists" in dup.json()["detail"]
    assert (await client.post("/v/run", json={})).json() == {"result": "one"}
    r = await client.post(
        "/deploy-files", json={"name": "v", "files": wrapper_returning("two"), "overwrite": True}
    )
    assert r.status_code == 200 and r.json()["action"] == "redeployed", r.text
    assert (await client.post("/v/run", json={})).json() == {"result": "two"}
    assert list((pipelines_dir / ".hayhooks" / "archive").glob("v/*/v/pipeline_wrapper.py")), (
        "old version archived"
    )


@pytest.mark.parametrize(
    "broken", ["syntax_error", "import_error", "setup_raises", "no_class", "not_subclass"]
)
async def test_failed_overwrite_keeps_old_version_serving_and_on_disk(app_client, pipelines_dir, broken):
    client = await app_client(pipelines_dir)
    await client.post("/deploy-files", json={"name": "keep", "files": wrapper_returning("old")})
    before = (pipelines_dir / "keep" / "pipeline_wrapper.py").read_text()
    files = read_folder(BROKEN_PIPELINES / broken)
    r = await client.post("/deploy-files", json={"name": "keep", "files": files, "overwrite": True})
    assert r.status_code == 422, r.text
    assert "keep" in r.json()["detail"]
    assert (await client.post("/keep/run", json={})).json() == {"result": "old"}
    assert (pipelines_dir / "keep" / "pipeline_wrapper.py").read_text() == before
    # and a fresh broken deploy leaves nothing behind
    r = await client.post("/deploy-files", json={"name": "fresh", "files": files})
    assert r.status_code == 422
    assert not (pipelines_dir / "fresh").exists()
    assert (await client.post("/fresh/run", json={})).status_code == 404


async def test_setup_error_reason_is_reported(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    r = await client.post(
        "/deploy-files", json={"name": "s", "files": read_folder(BROKEN_PIPELINES / "setup_raises")}
    )
    assert r.status_code == 422
    assert "setup() failed" in r.json()["detail"] and "the model file is missing" in r.json()["detail"]
    assert "Traceback" not in r.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "../escape.py",
        "/etc/passwd",
        "a/../../b.py",
        "..",
        "sub/../../x.py",
        "~/x.py",
        "a\\..\\b.py",
        ".hidden.py",
    ],
)
async def test_path_traversal_is_rejected(app_client, pipelines_dir, path):
    client = await app_client(pipelines_dir)
    files = {**wrapper_returning("x"), path: "print('pwned')"}
    r = await client.post("/deploy-files", json={"name": "trav", "files": files})
    assert r.status_code == 422, r.text
    assert not (pipelines_dir.parent / "escape.py").exists()
    assert not (pipelines_dir / "trav").exists()


@pytest.mark.parametrize(
    "name", ["status", "docs", "v1", "health", "mcp", "deploy", "../x", "a b", "", "-lead", "x" * 101]
)
async def test_invalid_and_reserved_names_are_rejected(app_client, pipelines_dir, name):
    client = await app_client(pipelines_dir)
    r = await client.post("/deploy-files", json={"name": name, "files": wrapper_returning("x")})
    assert r.status_code == 422, r.text
    assert (await client.get("/health")).status_code == 200


async def test_missing_wrapper_file_is_rejected(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    r = await client.post("/deploy-files", json={"name": "nowrap", "files": {"other.py": "x = 1"}})
    assert r.status_code == 422 and "pipeline_wrapper.py" in r.json()["detail"]


async def test_save_files_false_serves_without_saving(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    r = await client.post(
        "/deploy-files", json={"name": "temp", "files": wrapper_returning("t"), "save_files": False}
    )
    assert r.status_code == 200 and r.json()["saved"] is False
    assert (await client.post("/temp/run", json={})).json() == {"result": "t"}
    assert not (pipelines_dir / "temp").exists()
    status = (await client.get("/status/temp")).json()
    assert status["origin"] == "ephemeral"


async def test_ephemeral_deploys_are_gone_after_restart(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    await client.post(
        "/deploy-files", json={"name": "temp", "files": wrapper_returning("t"), "save_files": False}
    )
    await client.post("/deploy-files", json={"name": "kept", "files": wrapper_returning("k")})
    app = client.app  # type: ignore[attr-defined]
    await app.state.service.stop()
    fresh = await app_client(pipelines_dir)
    assert (await fresh.post("/temp/run", json={})).status_code == 404
    assert (await fresh.post("/kept/run", json={})).json() == {"result": "k"}


async def test_deploy_yaml_and_legacy_deploy(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    source = (SAMPLE_PIPELINES / "qa.yml").read_text()
    r = await client.post("/deploy-yaml", json={"name": "qa2", "source_code": source, "description": "Q&A"})
    assert r.status_code == 200, r.text
    r = await client.post("/qa2/run", json={"question": "q", "signature": "s"})
    assert r.json()["result"]["final"].endswith("(signed s)")
    assert (await client.post("/deploy-yaml", json={"name": "qa2", "source_code": source})).status_code == 409
    assert (await client.post("/deploy", json={"name": "qa3", "source_code": source})).status_code == 200
    assert (await client.post("/qa3/run", json={"question": "q", "signature": "s"})).status_code == 200
    assert (pipelines_dir / "qa3.yml").is_file()


async def test_deploy_yaml_description_is_used(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    source = "\n".join(
        line
        for line in (SAMPLE_PIPELINES / "qa.yml").read_text().splitlines()
        if not line.startswith("description")
    )
    r = await client.post(
        "/deploy-yaml", json={"name": "described", "source_code": source, "description": "Custom words"}
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/status/described")).json()["description"] == "Custom words"


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("not: [valid", "invalid YAML"),
        ("components: {}\n", "inputs"),
        ((BROKEN_PIPELINES / "bad_inputs.yml").read_text(), "prompt.nope"),
    ],
)
async def test_bad_yaml_is_422(app_client, pipelines_dir, source, fragment):
    client = await app_client(pipelines_dir)
    r = await client.post("/deploy-yaml", json={"name": "bad", "source_code": source})
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]
    assert not (pipelines_dir / "bad.yml").exists()


async def test_undeploy_unknown_is_404(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    assert (await client.post("/undeploy/ghost")).status_code == 404


async def test_admin_token_required_when_set(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, admin_token="s3cret")
    body = {"name": "t", "files": wrapper_returning("x")}
    assert (await client.post("/deploy-files", json=body)).status_code == 401
    assert (
        await client.post("/deploy-files", json=body, headers={"Authorization": "Bearer wrong"})
    ).status_code == 401
    r = await client.post("/deploy-files", json=body, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200, r.text
    assert (await client.post("/undeploy/t")).status_code == 401
    assert (await client.post("/undeploy/t", headers={"Authorization": "Bearer s3cret"})).status_code == 200


async def test_deploy_closed_on_non_loopback_without_token(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, host="0.0.0.0")
    r = await client.post("/deploy-files", json={"name": "t", "files": wrapper_returning("x")})
    assert r.status_code == 403 and "HAYHOOKS_ADMIN_TOKEN" in r.json()["detail"]
    assert (await client.post("/undeploy/t")).status_code == 403
    assert (await client.post("/deploy-yaml", json={"name": "y", "source_code": "x"})).status_code == 403


async def test_runtime_deploy_can_be_disabled(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, disable_runtime_deploy=True, admin_token="t")
    r = await client.post(
        "/deploy-files",
        json={"name": "t", "files": wrapper_returning("x")},
        headers={"Authorization": "Bearer t"},
    )
    assert r.status_code == 403 and "disabled" in r.json()["detail"]


async def test_hand_edits_are_picked_up(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, poll_interval=0.2)
    folder = pipelines_dir / "manual"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(wrapper_returning("first")["pipeline_wrapper.py"])
    for _ in range(100):
        if (await client.post("/manual/run", json={})).status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert (await client.post("/manual/run", json={})).json() == {"result": "first"}
    (folder / "pipeline_wrapper.py").write_text(wrapper_returning("second!")["pipeline_wrapper.py"])
    for _ in range(100):
        if (await client.post("/manual/run", json={})).json() == {"result": "second!"}:
            break
        await asyncio.sleep(0.05)
    assert (await client.post("/manual/run", json={})).json() == {"result": "second!"}


def test_reading_fixture_helper_skips_caches(tmp_path: Path):
    copy_pipelines(tmp_path, "echo")
    (tmp_path / "echo" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "echo" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert list(read_folder(tmp_path / "echo")) == ["pipeline_wrapper.py"]


async def test_deploy_reports_workers_that_did_not_catch_up(app_client, pipelines_dir):
    import json
    import time

    client = await app_client(pipelines_dir, deploy_sync_timeout=0.5)
    heartbeat = pipelines_dir / ".hayhooks" / "workers" / "other-host-7.json"

    async def ghost() -> None:
        # Another live worker (on another host) that keeps beating but never reaches a new generation.
        while True:
            now = time.time()
            heartbeat.write_text(
                json.dumps(
                    {
                        "id": "other-host-7",
                        "host": "other-host",
                        "pid": 7,
                        "generation": 0,
                        "version": 0,
                        "pipelines": 0,
                        "started_at": now,
                        "updated_at": now,
                    }
                )
            )
            await asyncio.sleep(0.1)

    beating = asyncio.create_task(ghost())
    try:
        await asyncio.sleep(0.05)
        r = await client.post("/deploy-files", json={"name": "slow", "files": wrapper_returning("x")})
        assert r.status_code == 504, r.text
        body = r.json()
        assert "other-host-7" in body["detail"] and "did not confirm" in body["detail"]
        assert body["result"]["lagging"] == ["other-host-7"] and body["result"]["workers"] == 2
        # The change itself is committed and served here.
        assert (await client.post("/slow/run", json={})).json() == {"result": "x"}
        status = (await client.get("/status")).json()
        assert {w["id"]: w["in_sync"] for w in status["workers"]}["other-host-7"] is False
    finally:
        beating.cancel()


def counting_wrapper(log_path: Path, value: str) -> dict[str, str]:
    return {
        "pipeline_wrapper.py": (
            "import os\nfrom pathlib import Path\nfrom hayhooks import BasePipelineWrapper\n"
            "class PipelineWrapper(BasePipelineWrapper):\n"
            "    def setup(self) -> None:\n"
            f"        with open({str(log_path)!r}, 'a') as fh:\n"
            "            fh.write(f'{os.getpid()}\\n')\n"
            "    def run_api(self) -> str:\n"
            "        # read lazily, relative to the wrapper file, at request time\n"
            "        return (Path(__file__).parent / 'data.txt').read_text()\n"
        ),
        "data.txt": value,
    }


async def test_deploy_runs_setup_once_and_serves_files_next_to_the_wrapper(
    app_client, pipelines_dir, tmp_path
):
    log_path = tmp_path / "setups.log"
    client = await app_client(pipelines_dir)
    r = await client.post("/deploy-files", json={"name": "once", "files": counting_wrapper(log_path, "v1")})
    assert r.status_code == 200, r.text
    assert (await client.post("/once/run", json={})).json() == {"result": "v1"}
    assert log_path.read_text().splitlines() == [str(os.getpid())], "setup() runs once per process"

    r = await client.post(
        "/deploy-files", json={"name": "once", "files": counting_wrapper(log_path, "v2"), "overwrite": True}
    )
    assert r.status_code == 200, r.text
    assert (await client.post("/once/run", json={})).json() == {"result": "v2"}
    assert len(log_path.read_text().splitlines()) == 2
    # Only the version being served keeps its folder (released with its last reference).
    work = pipelines_dir / ".hayhooks" / "work"
    gc.collect()
    assert len(list(work.glob("*/*"))) == 1
    assert (await client.post("/undeploy/once")).status_code == 200
    gc.collect()
    assert list(work.glob("*/*")) == [] and list((pipelines_dir / ".hayhooks" / "staging").iterdir()) == []


async def test_history_and_rollback_routes_are_admin_guarded_and_restore_a_version(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, admin_token="s3cret", archive_keep=2)
    auth = {"Authorization": "Bearer s3cret"}
    assert (await client.get("/pipelines/h/history")).status_code == 401
    assert (await client.post("/pipelines/h/rollback")).status_code == 401
    for value in ("one", "two", "three"):
        r = await client.post(
            "/deploy-files",
            json={"name": "h", "files": wrapper_returning(value), "overwrite": True},
            headers=auth,
        )
        assert r.status_code == 200, r.text
    versions = (await client.get("/pipelines/h/history", headers=auth)).json()["versions"]
    assert [v["current"] for v in versions] == [True, False, False], "two archived versions kept"
    r = await client.post("/pipelines/h/rollback", json={"version": versions[-1]["version"]}, headers=auth)
    assert r.status_code == 200 and r.json()["action"] == "rolled back", r.text
    assert (await client.post("/h/run", json={})).json() == {"result": "one"}
    r = await client.post("/pipelines/h/rollback", headers=auth)  # no body: the newest archived
    assert r.status_code == 200, r.text
    assert (await client.post("/h/run", json={})).json() == {"result": "three"}
    assert (await client.get("/pipelines/nope/history", headers=auth)).status_code == 404


async def test_an_unwritable_directory_answers_503_without_paths(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    work = pipelines_dir / ".hayhooks" / "work"
    os.rename(work, pipelines_dir / ".hayhooks" / "work.away")
    work.write_text("")  # every write below it fails, as on a read-only mount (chmod does not stop root)
    r = await client.post("/deploy-files", json={"name": "nowhere", "files": wrapper_returning("x")})
    assert r.status_code == 503, r.text
    assert str(pipelines_dir) not in r.text and "Traceback" not in r.text
    assert list((pipelines_dir / ".hayhooks" / "staging").iterdir()) == []
