"""The CLI end to end: real ``hayhooks run`` servers, the CLI as subprocesses, real HTTP and pipelines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from _server import HayhooksServer, free_port, run_cli

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cli"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module, started with a good and a broken pipeline already on disk.

    HAYHOOKS_PORT points elsewhere: the ``--port`` flag must win over the environment.
    """
    root = tmp_path_factory.mktemp("cli_e2e")
    pipelines = root / "pipelines"
    pipelines.mkdir()
    shutil.copytree(FIXTURES / "echo", pipelines / "preloaded")
    shutil.copytree(FIXTURES / "broken", pipelines / "handbroken")
    srv = HayhooksServer(pipelines, workdir=root, env={"HAYHOOKS_PORT": str(free_port())})
    srv.start()
    yield srv
    srv.stop()


def cli(server: HayhooksServer, *args: str, **kwargs):
    return run_cli(*args, "--url", server.url, cwd=server.workdir, **kwargs)


def pipeline_names(server: HayhooksServer) -> list[str]:
    """Checked over plain HTTP (not the CLI) so a CLI bug cannot hide another one."""
    return httpx.get(f"{server.url}/status", timeout=30).json()["pipelines"]


def ok(result) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr
    return result.stdout


def failed(result, code: int = 1) -> str:
    assert result.returncode == code, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr
    return result.stderr


def deploy(server, folder: str, name: str, *extra: str) -> str:
    return ok(cli(server, "pipeline", "deploy-files", "-n", name, str(FIXTURES / folder), *extra))


# -- status ----------------------------------------------------------------------------------------


def test_status_shows_pipelines_and_failures(server):
    out = ok(cli(server, "status"))
    assert f"Hayhooks server at {server.url}: Up!" in out
    assert "preloaded" in out
    assert "Shout the text back." in out  # the description column
    assert "Failed pipelines (1)" in out
    assert "handbroken" in out and "the model file 'weights.bin' is missing" in out

    data = json.loads(ok(cli(server, "status", "--json")))
    assert data["status"] == "Up!"
    assert "preloaded" in data["pipelines"]
    assert [f["name"] for f in data["failed"]] == ["handbroken"]


def test_status_finds_server_from_env_without_url(server):
    result = run_cli(
        "status", cwd=server.workdir, env={"HAYHOOKS_HOST": "0.0.0.0", "HAYHOOKS_PORT": str(server.port)}
    )
    assert "preloaded" in ok(result)


# -- deploy-files and run --------------------------------------------------------------------------


def test_deploy_files_then_run_with_typed_params(server):
    out = deploy(server, "greeter", "greeter")
    assert "Pipeline 'greeter' deployed" in out
    assert "greeter" in pipeline_names(server)

    out = ok(
        cli(
            server,
            "pipeline",
            "run",
            "greeter",
            "--param",
            "name=Ann",
            "--param",
            "top_k=3",
            "--param",
            'urls=["a", "b"]',
        )
    )
    assert json.loads(out) == {
        "prompt": "Hi Ann! Top 3 of 2 url(s).",  # rendered from the nested templates/greeting.txt
        "top_k": 3,
        "top_k_type": "int",
        "urls": ["a", "b"],
    }


def test_run_prints_string_results_as_plain_text(server):
    assert ok(cli(server, "pipeline", "run", "preloaded", "--param", "text=hello there")) == "HELLO THERE!\n"
    # a quoted JSON value forces a string even when it looks like a number
    assert ok(cli(server, "pipeline", "run", "preloaded", "-p", 'text="42"')) == "42!\n"


def test_deploy_conflict_then_overwrite(server):
    deploy(server, "echo", "twice")
    err = failed(cli(server, "pipeline", "deploy-files", "-n", "twice", str(FIXTURES / "echo")))
    assert "409" in err and "already exists" in err and "--overwrite" in err
    out = deploy(server, "echo", "twice", "--overwrite")
    assert "Pipeline 'twice' redeployed" in out


def test_deploy_without_saving_files(server):
    out = deploy(server, "echo", "ephemeral_echo", "--skip-saving-files")
    assert "not saved" in out
    assert not (server.pipelines_dir / "ephemeral_echo").exists()
    assert ok(cli(server, "pipeline", "run", "ephemeral_echo", "-p", "text=x")) == "X!\n"


def test_run_with_files_and_dirs_is_multipart(server, tmp_path):
    deploy(server, "upload_inspector", "inspector")
    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / "a.txt").write_text("hello")
    (docs / "nested" / "b.bin").write_bytes(b"\x00\x01\x02")
    (docs / ".hidden").write_text("skipped")
    single = tmp_path / "single.md"
    single.write_text("# title")

    out = ok(
        cli(
            server,
            "pipeline",
            "run",
            "inspector",
            "--file",
            str(single),
            "--dir",
            str(docs),
            "--param",
            "query=summarise",
            "--param",
            "top_k=2",
        )
    )
    result = json.loads(out)
    assert result["query"] == "summarise"
    assert result["top_k"] == 2
    assert [(f["name"], f["size"]) for f in result["files"]] == [
        ("a.txt", 5),
        ("nested/b.bin", 3),
        ("single.md", 7),
    ]
    assert result["files"][0]["head"] == "hello"


def test_run_stream_plain_text(server):
    deploy(server, "streamer", "streamer")
    out = ok(cli(server, "pipeline", "run", "streamer", "--param", "text=one two three", "--stream"))
    assert out == "<0:one><1:two><2:three>\n"


def test_run_stream_plain_text_failure_is_an_error(server):
    deploy(server, "streamer", "streamer_fail")
    result = cli(
        server,
        "pipeline",
        "run",
        "streamer_fail",
        "-p",
        "text=one two three",
        "-p",
        "fail_after=2",
        "--stream",
    )
    err = failed(result)
    assert result.stdout.startswith("<0:one><1:two>")  # what arrived before the failure
    assert "ended early" in err and "Cannot reach" not in err


def test_run_stream_sse(server):
    deploy(server, "sse_streamer", "sse_words")
    out = ok(cli(server, "pipeline", "run", "sse_words", "--param", "text=one two three", "--stream"))
    assert out.splitlines() == ["one two three ", '{"count": 3}']


def test_run_stream_sse_error_mid_stream(server):
    deploy(server, "sse_streamer", "sse_fail")
    result = cli(server, "pipeline", "run", "sse_fail", "-p", "text=a b", "-p", "fail=true", "--stream")
    err = failed(result)
    assert result.stdout.splitlines() == ["a b ", '{"count": 2}']  # what arrived before the failure
    assert (
        "The pipeline failed while streaming: Pipeline 'sse_fail' failed: RuntimeError: stream broke on purpose"
        in err
    )


def test_stream_flag_on_a_non_streaming_pipeline_prints_the_result(server):
    assert ok(cli(server, "pipeline", "run", "preloaded", "-p", "text=hi", "--stream")) == "HI!\n"


# -- deploy-yaml, deploy, undeploy -----------------------------------------------------------------


def test_deploy_yaml_run_undeploy(server, tmp_path):
    out = ok(
        cli(server, "pipeline", "deploy-yaml", str(FIXTURES / "greet.yml"), "--description", "Greets people")
    )
    assert "Pipeline 'greet' deployed" in out  # the name defaults to the file stem
    assert (server.pipelines_dir / "greet.yml").exists()

    status = httpx.get(f"{server.url}/status", timeout=30).json()
    greet = next(d for d in status["details"] if d["name"] == "greet")
    assert greet["type"] == "yaml" and greet["description"] == "Greets people"

    out = ok(cli(server, "pipeline", "run", "greet", "-p", "name=Bo", "-p", "question=why?"))
    assert json.loads(out) == {"prompt": "Hello Bo, you asked: why?"}

    out = ok(cli(server, "pipeline", "undeploy", "greet"))
    assert "Pipeline 'greet' undeployed" in out
    assert "greet" not in pipeline_names(server)

    err = failed(cli(server, "pipeline", "run", "greet", "-p", "name=Bo"))
    assert "404" in err and "Pipeline 'greet' not found" in err
    err = failed(cli(server, "pipeline", "undeploy", "greet"))
    assert "Pipeline 'greet' not found" in err
    result = cli(server, "pipeline", "undeploy", "greet", "--force")
    assert result.returncode == 0 and "nothing to undeploy" in result.stderr


def test_short_deploy_form_with_name_and_no_save_file(server):
    out = ok(cli(server, "deploy", "-n", "greet_short", "--no-save-file", str(FIXTURES / "greet.yml")))
    assert "Pipeline 'greet_short' deployed" in out and "not saved" in out
    assert not (server.pipelines_dir / "greet_short.yml").exists()
    out = ok(cli(server, "pipeline", "run", "greet_short", "-p", "name=Al", "-p", "question=ok"))
    assert json.loads(out)["prompt"] == "Hello Al, you asked: ok"


# -- errors ----------------------------------------------------------------------------------------


def test_unknown_pipeline(server):
    err = failed(cli(server, "pipeline", "run", "does_not_exist", "-p", "x=1"))
    assert err.strip() == "Error: Server error 404: Pipeline 'does_not_exist' not found"


def test_invalid_params_show_pydantic_errors_readably(server):
    deploy(server, "greeter", "greeter_validation")
    err = failed(cli(server, "pipeline", "run", "greeter_validation", "-p", "top_k=abc"))
    assert "422" in err
    assert "name: Field required" in err
    assert "top_k: Input should be a valid integer" in err


def test_run_failure_shows_the_server_reason(server):
    deploy(server, "failing_run", "failing")
    err = failed(cli(server, "pipeline", "run", "failing", "-p", "query=q"))
    assert "500" in err and "ValueError: cannot answer 'q'" in err


def test_broken_wrapper_deploy_shows_the_reason(server):
    err = failed(cli(server, "pipeline", "deploy-files", "-n", "broken", str(FIXTURES / "broken")))
    assert "422" in err and "the model file 'weights.bin' is missing" in err
    assert "broken" not in pipeline_names(server)


def test_unreachable_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["status"],
        ["pipeline", "run", "x"],
        ["pipeline", "deploy-yaml", str(FIXTURES / "greet.yml")],
    ):
        result = run_cli(*args, "--url", url, cwd=tmp_path)
        err = failed(result)
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"Error: Cannot reach the Hayhooks server at {url}")


# -- admin token -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """A server with an admin token, its port given only as HAYHOOKS_PORT (env fallback of `run`)."""
    root = tmp_path_factory.mktemp("cli_e2e_token")
    srv = HayhooksServer(
        root / "pipelines", workdir=root, env={"HAYHOOKS_ADMIN_TOKEN": "s3cret"}, port_flag=False
    )
    srv.start()
    yield srv
    srv.stop()


def test_admin_token(token_server):
    srv = token_server
    assert httpx.get(f"{srv.url}/ready").status_code == 200  # listening on the HAYHOOKS_PORT port

    err = failed(cli(srv, "pipeline", "deploy-files", "-n", "echo", str(FIXTURES / "echo")))
    assert "401" in err and "HAYHOOKS_ADMIN_TOKEN" in err and "Hint" in err
    err = failed(
        cli(srv, "pipeline", "deploy-files", "-n", "echo", str(FIXTURES / "echo"), "--token", "wrong")
    )
    assert "401" in err

    deploy(srv, "echo", "echo", "--token", "s3cret")
    result = run_cli(
        "pipeline",
        "undeploy",
        "echo",
        "--url",
        srv.url,
        cwd=srv.workdir,
        env={"HAYHOOKS_ADMIN_TOKEN": "s3cret"},
    )
    assert "Pipeline 'echo' undeployed" in ok(result)
