"""Another producer's sendSms latency while attackers post deeply nested XML to the gateway.

Starts a private ``redis-server`` and one ``smsq gateway`` process (127.0.0.1 only), measures
the median latency of producer ``blog`` sending valid JSON fluxes one after another, first
alone (the baseline), then while ``--attackers`` connections post ``--depth``-level XML
(``<a>`` nested, about 7 bytes a level: 290,000 levels is 2 MB, sent as a multipart file part
so it fits the 2 MiB body limit) as producer ``shop``, and prints both medians and their ratio.

``--source DIR`` runs the gateway from another source tree (put first on PYTHONPATH), e.g. the
code before the depth cap::

    mkdir /tmp/gw-before && git archive main | tar -x -C /tmp/gw-before
    .venv/bin/python bench/gateway_nesting.py --source /tmp/gw-before
    .venv/bin/python bench/gateway_nesting.py

Not a CI test: figures depend on the machine. Every loop is bounded in count and time, and the
processes it starts are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from worker.dev.redis_server import RedisServer


ROOT = Path(__file__).resolve().parent.parent
SHOP = ("shop", "shop-key-7c2e9a41b0d3f865")
BLOG = ("blog", "blog-key-0f9e8d7c6b5a4938")
PATH = "/http/9.0/sendSms/"
START_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_gateway(redis_url: str, port: int, source: str | None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SMSQ_PRODUCERS": json.dumps(
            [{"login": login, "api_key": key} for login, key in (SHOP, BLOG)]
        ),
        "SMSQ_LOG_LEVEL": "ERROR",
        "PYTHONPATH": os.pathsep.join(p for p in (source, str(ROOT)) if p),
    }
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "worker", "gateway", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=source or ROOT,  # python -m puts the working directory first on sys.path
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
            return process
        except httpx.HTTPError:
            if process.poll() is not None:
                raise RuntimeError(  # noqa: B904 - the HTTP error says nothing more
                    f"gateway exited: {process.stdout.read() if process.stdout else ''}"
                )
            time.sleep(0.1)
    process.terminate()
    raise TimeoutError("gateway did not start")


def gateway_flux_module(source: str | None) -> str:
    """Where the gateway process imports the flux parser from (checks ``--source`` is used)."""
    found = subprocess.run(
        [sys.executable, "-c", "import worker.allmysms.flux as f; print(f.__file__)"],
        cwd=source or ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source, str(ROOT)) if p)},
        capture_output=True,
        text=True,
        check=True,
        timeout=START_TIMEOUT_S,
    )
    return found.stdout.strip()


def victim_latencies(url: str, count: int, tag: str) -> list[float]:
    """``count`` sequential valid sendSms requests of ``blog``; their latencies in seconds."""
    latencies = []
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
        for n in range(count):
            flux = {
                "DATA": {
                    "MESSAGE": "Bonjour",
                    "CLIMSGID": f"{tag}-{n}",
                    "SMS": [{"MOBILEPHONE": "33612345678"}],
                }
            }
            data = {"login": BLOG[0], "apiKey": BLOG[1], "smsData": json.dumps(flux)}
            started = time.perf_counter()
            response = http.post(url, data={**data, "returnformat": "json"})
            latencies.append(time.perf_counter() - started)
            status = json.loads(response.text)["status"]
            if status != 100:
                raise RuntimeError(f"victim request answered {status}: {response.text}")
    return latencies


def attack(url: str, body: bytes, stop: threading.Event, answers: list[int]) -> None:
    """Post the nested XML again and again until ``stop`` (bounded by time in main)."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
        while not stop.is_set():
            response = http.post(
                url,
                data={"login": SHOP[0], "apiKey": SHOP[1], "returnformat": "json"},
                files={"smsData": ("flux.xml", body, "text/xml")},
            )
            answers.append(int(json.loads(response.text)["status"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", help="run the gateway from this source tree")
    parser.add_argument("--attackers", type=int, default=6)
    parser.add_argument("--depth", type=int, default=290_000)
    parser.add_argument(
        "--shape", choices=["deep", "wide"], default="deep", help="wide: <a/> side by side"
    )
    parser.add_argument("--requests", type=int, default=40, help="victim requests per phase")
    parser.add_argument("--max-attack-s", type=float, default=120.0)
    args = parser.parse_args()

    if args.shape == "deep":
        body = ("<DATA>" + "<a>" * args.depth + "</a>" * args.depth + "</DATA>").encode()
    else:  # as many empty elements side by side in the same bytes
        body = ("<DATA>" + "<a/>" * (args.depth * 7 // 4) + "</DATA>").encode()
    redis = RedisServer().start()
    gateway = None
    try:
        port = free_port()
        gateway = start_gateway(redis.url, port, args.source)
        url = f"http://127.0.0.1:{port}{PATH}"
        victim_latencies(url, 5, "warm")
        baseline = victim_latencies(url, args.requests, "alone")

        stop = threading.Event()
        answers: list[int] = []
        threads = [
            threading.Thread(target=attack, args=(url, body, stop, answers), daemon=True)
            for _ in range(args.attackers)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        attacked = victim_latencies(url, args.requests, "attacked")
        stop.set()
        for thread in threads:
            thread.join(max(1.0, args.max_attack_s - (time.monotonic() - started)))

        alone_ms = statistics.median(baseline) * 1000
        attacked_ms = statistics.median(attacked) * 1000
        lines = [
            f"source: {args.source or ROOT} (flux parser {gateway_flux_module(args.source)})",
            f"attack: {args.attackers} connections, {len(body):,} bytes, {args.shape}, "
            f"depth {args.depth:,}",
            f"attack requests answered: {len(answers)}, statuses {sorted(set(answers))}",
            f"victim median alone:        {alone_ms:8.1f} ms ({args.requests} requests)",
            f"victim median under attack: {attacked_ms:8.1f} ms ({args.requests} requests)",
            f"ratio: {attacked_ms / alone_ms:.1f}x the no-attack baseline",
        ]
        print("\n".join(lines))  # noqa: T201
    finally:
        if gateway is not None:
            gateway.terminate()
            try:
                gateway.wait(10)
            except subprocess.TimeoutExpired:
                gateway.kill()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
