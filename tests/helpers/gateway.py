"""Requests to a live gateway in the AllMySMS shape, and its test settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from producers.config import ProducerSettings
from worker.settings import ProducerAccount, Secret, Settings


SHOP = ("shop", "shop-key-7c2e9a41b0d3f865")
"""Producer login and gateway apiKey (never the AllMySMS one)."""
BLOG = ("blog", "blog-key-0f9e8d7c6b5a4938")
PATH = "/http/9.0/sendSms/"
PHONE = "33612345678"
CLIENT_TIMEOUT_S = 60


def gateway_settings(redis_url: str, *, max_body_bytes: int = 64 * 1024) -> Settings:
    return Settings(
        producer=ProducerSettings(redis_url=redis_url),
        producers=(
            ProducerAccount(SHOP[0], Secret(SHOP[1])),
            ProducerAccount(BLOG[0], Secret(BLOG[1])),
        ),
        gateway_max_body_bytes=max_body_bytes,
    )


def self_signed(folder: Path, common_name: str, alt_name: str) -> tuple[str, str]:
    """A one-day self-signed certificate and its key (paths) made by openssl in ``folder``;
    ``alt_name`` is the subjectAltName entry (``IP:…`` or ``DNS:…``)."""
    openssl = need("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            f"subjectAltName={alt_name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=CLIENT_TIMEOUT_S,
    )
    return str(cert), str(key)


def need(program: str) -> str:
    """The path of ``program``; a test that needs a missing one fails in CI and skips elsewhere."""
    found = shutil.which(program)
    if found is None:
        message = f"{program} is not installed (apt-get install it; see scripts/quickstart.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def json_flux(**data: Any) -> str:
    data.setdefault("MESSAGE", "Bonjour")
    data.setdefault("SMS", [{"MOBILEPHONE": PHONE}])
    return json.dumps({"DATA": data})


def post(
    url: str,
    sms_data: str,
    *,
    account: tuple[str, str] = SHOP,
    headers: dict[str, str] | None = None,
    returnformat: str | None = "json",
    **params: str,
) -> httpx.Response:
    """POST form-urlencoded, asking for JSON unless ``returnformat`` says otherwise."""
    data = {"login": account[0], "apiKey": account[1], "smsData": sms_data, **params}
    if returnformat is not None:
        data["returnformat"] = returnformat
    return httpx.post(url, data=data, headers=headers, timeout=10)


def answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON body (the gateway, like AllMySMS, labels it text/html)."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = json.loads(response.text)
    return body
