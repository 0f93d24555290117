"""Settings come only from the environment; .env.example lists exactly what is read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from producers.errors import ConfigError
from tests.helpers.processes import ROOT
from worker.settings import Settings


class RecordingEnv(Mapping[str, str]):
    """An empty environment that records every variable name asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_env_example_lists_exactly_the_variables_read() -> None:
    """Every variable Settings.from_env reads is in .env.example, and nothing else is."""
    env = RecordingEnv()
    Settings.from_env(env)
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert documented == env.asked


def test_defaults_match_env_example() -> None:
    """The values written in .env.example are the defaults (an empty env gives the same)."""
    values = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert Settings.from_env(values) == Settings.from_env({})


@pytest.mark.parametrize(
    ("env", "variable", "reason"),
    [
        ({"SMSQ_SEND_ATTEMPTS": "many"}, "SMSQ_SEND_ATTEMPTS", "must be a whole number"),
        ({"SMSQ_SEND_ATTEMPTS": "0"}, "SMSQ_SEND_ATTEMPTS", "must be at least 1"),
        ({"SMSQ_HTTP_READ_TIMEOUT_S": "-1"}, "SMSQ_HTTP_READ_TIMEOUT_S", "must be at least 0.01"),
        (
            {"SMSQ_DEFAULT_COUNTRY": "XX"},
            "SMSQ_DEFAULT_COUNTRY",
            "must be an ISO 3166 two-letter country code such as FR",
        ),
        ({"ALLMYSMS_BASE_URL": "ftp://x"}, "ALLMYSMS_BASE_URL", "must be an http(s) URL"),
        ({"SMSQ_LOG_FORMAT": "xml"}, "SMSQ_LOG_FORMAT", "must be one of auto, json, console"),
        (
            {"SMSQ_ADMIN_COOKIE_SECURE": "maybe"},
            "SMSQ_ADMIN_COOKIE_SECURE",
            "must be true or false",
        ),
        (
            {"SMSQ_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"},
            "SMSQ_TRUSTED_PROXIES",
            "entry 2 is not a network such as 10.0.0.0/8 or fd00::/8 (an address, or a CIDR "
            "whose host bits are zero)",
        ),
        (
            {"SMSQ_SERVER_HEADER_TIMEOUT_S": "0"},
            "SMSQ_SERVER_HEADER_TIMEOUT_S",
            "must be at least 0.1",
        ),
        ({"SMSQ_SERVER_BODY_TIMEOUT_S": "x"}, "SMSQ_SERVER_BODY_TIMEOUT_S", "must be a number"),
        (
            {"SMSQ_CREDITS_POLL_INTERVAL_S": "-1"},
            "SMSQ_CREDITS_POLL_INTERVAL_S",
            "must be at least 0",
        ),
        ({"SMSQ_CREDITS_LOW": "1.5"}, "SMSQ_CREDITS_LOW", "must be a whole number"),
        ({"SMSQ_CREDITS_LOW": "-15"}, "SMSQ_CREDITS_LOW", "must be at least 0"),
        ({"SMSQ_CREDITS_AUTO_RESUME": "2"}, "SMSQ_CREDITS_AUTO_RESUME", "must be true or false"),
        ({"SMSQ_POLL_INTERVAL_S": "-1"}, "SMSQ_POLL_INTERVAL_S", "must be at least 0"),
        ({"SMSQ_POLL_ACKS_AFTER_S": "soon"}, "SMSQ_POLL_ACKS_AFTER_S", "must be a number"),
        (
            {"SMSQ_CALLBACK_ALLOWED_HOSTS": "shop.example.com,not a host"},
            "SMSQ_CALLBACK_ALLOWED_HOSTS",
            "entry 2 is not a host name such as shop.example.com or "
            "*.example.com (international names in their xn-- form)",
        ),
        (
            {"SMSQ_CALLBACK_ALLOWED_HOSTS": "*.*.example.com"},
            "SMSQ_CALLBACK_ALLOWED_HOSTS",
            "entry 1 is not a host name such as shop.example.com or *.example.com (international "
            "names in their xn-- form)",
        ),
        (
            {"SMSQ_CALLBACK_ALLOWED_NETWORKS": "10.0.0.1/8"},
            "SMSQ_CALLBACK_ALLOWED_NETWORKS",
            "entry 1 is not a network such as 10.0.0.0/8 or fd00::/8 (an address, or a CIDR whose "
            "host bits are zero)",
        ),
        (
            {"SMSQ_CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8,private"},
            "SMSQ_CALLBACK_ALLOWED_NETWORKS",
            "entry 2 is not a network such as 10.0.0.0/8 or "
            "fd00::/8 (an address, or a CIDR whose host bits are zero)",
        ),
    ],
)
def test_invalid_settings_name_the_variable(
    env: dict[str, str], variable: str, reason: str
) -> None:
    """A bad value raises ConfigError naming the variable and the reason, not the value."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert (info.value.variable, info.value.reason) == (variable, reason)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLMYSMS_API_KEY": "k"}, "ALLMYSMS_LOGIN: is required to send (your AllMySMS login)"),
        (
            {"ALLMYSMS_LOGIN": "me"},
            "ALLMYSMS_API_KEY: is required to send (the API key from your AllMySMS account)",
        ),
    ],
)
def test_missing_credentials_are_named(env: dict[str, str], message: str) -> None:
    """require_credentials names the missing variable."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env).require_credentials()
    assert str(info.value) == message


def test_server_settings_read_proxies_and_deadlines() -> None:
    server = Settings.from_env(
        {
            "SMSQ_TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8 ,fd00::/8",
            "SMSQ_SERVER_HEADER_TIMEOUT_S": "2.5",
            "SMSQ_SERVER_BODY_TIMEOUT_S": "30",
            "SMSQ_ADMIN_COOKIE_SECURE": "Off",
        }
    )
    assert [str(n) for n in server.server.trusted_proxies] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "fd00::/8",
    ]
    assert (server.server.header_timeout_s, server.server.body_timeout_s) == (2.5, 30.0)
    assert server.admin_cookie_secure is False
    defaults = Settings.from_env({})
    assert (defaults.server.trusted_proxies, defaults.admin_cookie_secure) == ((), True)
    assert (defaults.server.header_timeout_s, defaults.server.body_timeout_s) == (10.0, 60.0)
