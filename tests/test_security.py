"""The trust decisions of ``hayhooks.security`` on plain values (the HTTP behaviour is in
``tests/test_server_guard.py`` and ``tests/e2e/test_security_e2e.py``)."""

import pytest

from hayhooks.errors import Forbidden, Unauthorized
from hayhooks.security import (
    Caller,
    api_key_valid,
    authorize_deploy,
    is_admin,
    is_genuinely_local,
    is_loopback_host,
    is_loopback_origin,
    mcp_origin_allowed,
    public_status,
    require_api_key,
)
from hayhooks.settings import HayhooksSettings, is_loopback


def settings(**kw) -> HayhooksSettings:
    return HayhooksSettings(_env_file=None, **kw)


def local(**headers: str) -> Caller:
    """A direct request from this machine to 127.0.0.1:1416, plus ``headers``."""
    base = {"host": "127.0.0.1:1416"}
    base.update({k.replace("_", "-").lower(): v for k, v in headers.items()})
    return Caller(headers=base, client="127.0.0.1", server="127.0.0.1", http_version="1.1")


def test_loopback_detection():
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
        and is_loopback("127.1.2.3")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1416", "127.0.0.1", "127.0.0.1:8000", "[::1]", "[::1]:1416", "127.9.9.9"]
)
def test_loopback_hosts(host):
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [None, "", "evil.example", "evil.example:1416", "localhost.evil.example", "127.0.0.1.nip.io",
     "[::1]x", "127.0.0.1:abc", "0.0.0.0:1416", "[::2]:1", "127.0.0.1,evil.example"],
)  # fmt: skip
def test_foreign_hosts(host):
    assert not is_loopback_host(host)


def test_loopback_origins():
    assert is_loopback_origin("http://localhost:3000") and is_loopback_origin("https://127.0.0.1")
    assert is_loopback_origin("http://[::1]:8080")
    for origin in (
        "null",
        "http://evil.example",
        "http://localhost.evil.example",
        "file://",
        "http://127.0.0.1.x",
    ):
        assert not is_loopback_origin(origin)


def test_genuinely_local_needs_every_sign():
    assert is_genuinely_local(local())
    assert is_genuinely_local(local(origin="http://localhost:3000"))
    assert not is_genuinely_local(local(host="evil.example:1416"))  # DNS rebinding
    assert not is_genuinely_local(local(origin="http://evil.example"))
    assert not is_genuinely_local(local(origin="null"))
    for header in ("forwarded", "x-forwarded-for", "x-real-ip"):
        assert not is_genuinely_local(local(**{header: "203.0.113.9"}))  # a proxy on this host
    assert not is_genuinely_local(Caller({"host": "127.0.0.1"}, client="10.0.0.2", server="127.0.0.1"))
    assert not is_genuinely_local(Caller({"host": "127.0.0.1"}, client="127.0.0.1", server="10.0.0.1"))
    assert not is_genuinely_local(Caller({"host": "127.0.0.1"}, client=None))
    assert not is_genuinely_local(Caller({}, client="127.0.0.1", server="127.0.0.1"))  # no Host
    http10 = Caller({"host": "127.0.0.1"}, client="127.0.0.1", server="127.0.0.1", http_version="1.0")
    assert not is_genuinely_local(http10)  # nginx's default upstream protocol


def test_caller_from_scope_joins_repeated_headers():
    scope = {
        "headers": [(b"host", b"127.0.0.1"), (b"Host", b"evil.example"), (b"x-api-key", b"\xe9")],
        "client": ("127.0.0.1", 5),
        "server": ("127.0.0.1", 1416),
        "http_version": "1.1",
    }
    caller = Caller.from_scope(scope)
    assert caller.headers["host"] == "127.0.0.1,evil.example" and not is_genuinely_local(caller)
    assert caller.headers["x-api-key"] == "\xe9"


def test_deploy_policy():
    authorize_deploy(settings(host="127.0.0.1"), local())
    with pytest.raises(Forbidden):  # not bound to loopback
        authorize_deploy(settings(host="0.0.0.0"), local())
    with pytest.raises(Forbidden):  # reached from another machine
        authorize_deploy(settings(), Caller({"host": "127.0.0.1"}, client="192.168.1.5", server="127.0.0.1"))
    with pytest.raises(Forbidden, match="HAYHOOKS_ADMIN_TOKEN"):  # through a proxy on this host
        authorize_deploy(settings(), local(x_forwarded_for="203.0.113.9"))
    with pytest.raises(Forbidden):
        authorize_deploy(settings(), local(host="evil.example"))
    remote = Caller({"host": "h.example"}, client="10.0.0.1", server="10.0.0.2")
    with pytest.raises(Unauthorized):
        authorize_deploy(settings(host="0.0.0.0", admin_token="t"), remote)
    with pytest.raises(Unauthorized):
        authorize_deploy(settings(host="0.0.0.0", admin_token="t"), Caller({"authorization": "Bearer nope"}))
    authorize_deploy(settings(host="0.0.0.0", admin_token="t"), Caller({"authorization": "bearer t"}))
    with pytest.raises(Forbidden, match="disabled"):
        authorize_deploy(
            settings(disable_runtime_deploy=True, admin_token="t"), Caller({"authorization": "Bearer t"})
        )


def test_api_keys_never_deploy_and_non_ascii_never_crashes():
    s = settings(api_keys=["k1"], admin_token="adm")
    with pytest.raises(Unauthorized):
        authorize_deploy(s, Caller({"authorization": "Bearer k1"}))
    with pytest.raises(Unauthorized):
        authorize_deploy(s, Caller({"authorization": "Bearer \xe9\xff", "x-api-key": "adm"}))
    assert not api_key_valid(s, Caller({"authorization": "Bearer \xe9\xff"}))


def test_web_pages_deploy_only_when_listed_by_name_with_a_token():
    page = {"origin": "https://app.example", "authorization": "Bearer t"}
    with pytest.raises(Forbidden, match="web pages"):  # '*' does not list anybody
        authorize_deploy(settings(admin_token="t"), Caller(page))
    with pytest.raises(Forbidden, match="web pages"):  # listed, but no token configured
        authorize_deploy(
            settings(cors_allow_origins=["https://app.example"]), local(origin="https://app.example")
        )
    authorize_deploy(settings(admin_token="t", cors_allow_origins=["https://app.example/"]), Caller(page))
    with pytest.raises(Forbidden):  # a local page on another port is another site
        authorize_deploy(settings(), local(origin="http://localhost:3000"))
    authorize_deploy(settings(), local(origin="http://127.0.0.1:1416"))  # this server's own /docs
    rebinding = local(host="evil.example:1416", origin="http://evil.example:1416")
    with pytest.raises(Forbidden):
        authorize_deploy(settings(), rebinding)


def test_api_keys():
    s = settings(api_keys="k1, k2", admin_token="adm")
    assert s.api_keys == ["k1", "k2"]
    assert api_key_valid(s, Caller({"authorization": "Bearer k2"}))
    assert api_key_valid(s, Caller({"x-api-key": "k1"}))
    assert api_key_valid(s, Caller({"x-api-key": "adm"}))  # the admin token works too
    assert not api_key_valid(s, Caller({"x-api-key": "k3"}))
    assert not api_key_valid(s, Caller({"authorization": "Basic k1"}))
    assert not api_key_valid(s, Caller({}))
    assert api_key_valid(settings(), Caller({}))  # no keys: open
    with pytest.raises(Unauthorized, match="X-API-Key"):
        require_api_key(s, Caller({"x-api-key": "k1x"}))


def test_list_settings_from_env(monkeypatch):
    monkeypatch.setenv("HAYHOOKS_API_KEYS", '["a", "b,c"]')
    monkeypatch.setenv("HAYHOOKS_CORS_ALLOW_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("HAYHOOKS_CORS_EXPOSE_HEADERS", "")
    s = HayhooksSettings(_env_file=None)
    assert s.api_keys == ["a", "b,c"]
    assert s.cors_allow_origins == ["http://a.example", "http://b.example"]
    assert s.cors_expose_headers == [] and s.cors_allow_methods == ["*"] and s.cors_max_age == 600
    monkeypatch.setenv("HAYHOOKS_API_KEYS", "[not json")
    with pytest.raises(ValueError, match="JSON list"):
        HayhooksSettings(_env_file=None)


def test_mcp_origin_rule():
    assert mcp_origin_allowed(settings(), local())
    assert mcp_origin_allowed(settings(), local(origin="http://localhost:6274"))
    assert not mcp_origin_allowed(settings(), local(origin="http://evil.example"))  # '*' is not a listing
    assert mcp_origin_allowed(
        settings(cors_allow_origins="http://app.example"), local(origin="http://app.example")
    )
    assert mcp_origin_allowed(
        settings(cors_allow_origin_regex=r"https://.*\.corp\.example"), local(origin="https://x.corp.example")
    )
    rebinding = local(host="evil.example:1416", origin="http://evil.example:1416")
    assert not mcp_origin_allowed(settings(host="127.0.0.1"), rebinding)
    assert mcp_origin_allowed(settings(host="0.0.0.0"), rebinding)  # a public server's own pages


def test_admin_view_and_public_status():
    assert is_admin(settings(), local())
    assert not is_admin(settings(), local(x_real_ip="1.2.3.4"))
    assert is_admin(settings(admin_token="t"), Caller({"authorization": "Bearer t"}))
    status = {
        "status": "Up!",
        "pipelines": ["a"],
        "ready": True,
        "generation": 3,
        "details": [{"name": "a", "type": "wrapper", "capabilities": ["run"], "source": "/srv/p/a"}],
        "failed": [{"name": "b", "source": "/srv/p/b", "error": "Traceback ... /srv/p/b/x.py"}],
        "worker": "host-1234",
        "workers": [{"id": "host-1234", "generation": 3, "pipelines": 1, "in_sync": True}],
        "detached_runs": 2,
        "some_text": "/srv/secret",
    }
    public = public_status(status)
    assert "/srv" not in str(public) and "1234" not in str(public)
    assert public["details"] == [{"name": "a", "type": "wrapper", "capabilities": ["run"]}]
    assert public["failed"] == [{"name": "b", "status": "failed"}]
    assert public["detached_runs"] == 2 and public["ready"] is True and public["pipelines"] == ["a"]
