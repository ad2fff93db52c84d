import pytest

from hayhooks.errors import Forbidden, Unauthorized
from hayhooks.security import authorize_deploy
from hayhooks.settings import HayhooksSettings, is_loopback


def test_loopback_detection():
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
        and is_loopback("127.1.2.3")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")


def test_policy():
    authorize_deploy(HayhooksSettings(host="127.0.0.1"), None, "127.0.0.1")
    with pytest.raises(Forbidden):
        authorize_deploy(HayhooksSettings(host="0.0.0.0"), None, "127.0.0.1")
    with pytest.raises(Forbidden):  # loopback-bound setting but reached through another address
        authorize_deploy(HayhooksSettings(host="127.0.0.1"), None, "192.168.1.5")
    with pytest.raises(Unauthorized):
        authorize_deploy(HayhooksSettings(host="0.0.0.0", admin_token="t"), "Bearer nope", None)
    authorize_deploy(HayhooksSettings(host="0.0.0.0", admin_token="t"), "bearer t", "10.0.0.1")
    with pytest.raises(Forbidden, match="disabled"):
        authorize_deploy(HayhooksSettings(disable_runtime_deploy=True, admin_token="t"), "Bearer t", None)
