"""The form both baselines POST: the same flux smsq sends for a single-recipient message."""

from __future__ import annotations

import json
import os


def send_url() -> str:
    return os.environ["ALLMYSMS_BASE_URL"].rstrip("/") + "/sendSms/"


def form(key: str, phone: str, text: str) -> dict[str, str]:
    flux = {"DATA": {"MESSAGE": text, "CAMPAIGN_NAME": key, "SMS": [{"MOBILEPHONE": phone}]}}
    return {
        "login": os.environ["ALLMYSMS_LOGIN"],
        "apiKey": os.environ["ALLMYSMS_API_KEY"],
        "smsData": json.dumps(flux, ensure_ascii=False, separators=(",", ":")),
        "returnformat": "json",
    }
