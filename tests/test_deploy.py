"""Deployment files (deploy/, Procfile) against the code, without Docker, Kubernetes or systemd:
the YAML loads (PyYAML, a test dependency), every ``smsq`` command they run or mention exists
and accepts its flags (checked with smsq's own argument parser), every process of the Procfile
is deployed everywhere, and each process is given only the secrets it uses.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.processes import ROOT
from worker.cli.commands import _parser
from worker.settings import Settings


DEPLOY = ROOT / "deploy"
PROCFILE = ROOT / "Procfile"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
UNIT_FILES = sorted(DEPLOY.glob("*.service"))
K8S_DEPLOYMENTS = sorted(
    p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "secret.example.yaml"
)
PLATFORM_VARIABLES = {"$PORT": "5000"}
"""What a Procfile platform substitutes before it runs a command."""

RUNS = {
    "Procfile": {"worker", "admin", "gateway", "callbacks"},
    "deploy/compose.yaml": {"worker", "admin", "gateway", "callbacks"},
    "deploy/compose.sentinel.yaml": set(),
    "deploy/k8s/admin.yaml": {"admin"},
    "deploy/k8s/callbacks.yaml": {"callbacks", "stats"},
    "deploy/k8s/gateway.yaml": {"gateway"},
    "deploy/k8s/secret.example.yaml": set(),
    "deploy/k8s/worker.yaml": {"worker", "stats"},
    "deploy/prometheus/smsq-alerts.yaml": set(),
    "deploy/smsq-admin.service": {"admin"},
    "deploy/smsq-callbacks.service": {"callbacks"},
    "deploy/smsq-gateway.service": {"gateway"},
    "deploy/smsq-worker.service": {"worker"},
}
"""The smsq subcommands each file runs (``stats``: the readiness probes)."""
MENTIONED = {"stats", "dlq", "admin", "gateway", "callbacks"}
"""The smsq subcommands the comments of those files quote as commands."""

SECRETS = {
    "ALLMYSMS_API_KEY",
    "SMSQ_ADMIN_PASSWORD",
    "SMSQ_ADMIN_SESSION_SECRET",
    "SMSQ_PRODUCERS",
    "SMSQ_WEBHOOK_SECRET",
    "SMSQ_CALLBACK_SECRET",
}
USES = {
    "worker": {"ALLMYSMS_API_KEY"},  # Settings.require_credentials, the sendSms POST
    "admin": {"SMSQ_ADMIN_PASSWORD", "SMSQ_ADMIN_SESSION_SECRET"},  # require_admin
    "gateway": {"SMSQ_PRODUCERS", "SMSQ_WEBHOOK_SECRET"},  # ProducerBook, webhook_routes
    "callbacks": {"SMSQ_PRODUCERS", "SMSQ_CALLBACK_SECRET"},  # callback_secret_for
}
"""The secrets each process reads; it must get these and none of the others."""
SYSTEMD_ENV_FILES = {
    "/etc/smsq/env": SECRETS - {"SMSQ_PRODUCERS", "SMSQ_WEBHOOK_SECRET", "SMSQ_CALLBACK_SECRET"},
    "/etc/smsq/producers.env": {"SMSQ_PRODUCERS", "SMSQ_WEBHOOK_SECRET", "SMSQ_CALLBACK_SECRET"},
}
"""Which secrets each env file holds, as the units' comments lay them out."""


# --- YAML ----------------------------------------------------------------------------------------


def documents(path: Path) -> list[Any]:
    """Every YAML document of ``path``, loaded (merge keys and anchors resolved)."""
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_files_load_as_mappings(path: Path) -> None:
    loaded = documents(path)
    assert loaded
    assert all(isinstance(document, dict) for document in loaded)


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` pair anywhere under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# --- smsq commands in the deployment files ----------------------------------------------------


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` (none for a leaf command)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def smsq_subcommands() -> dict[str, argparse.ArgumentParser]:
    """smsq's subcommands, read from the parser ``smsq`` itself builds."""
    subcommands = subparsers(_parser())
    assert subcommands, "smsq's parser has no subcommands"
    return subcommands


def option_strings(args: tuple[str, ...]) -> set[str]:
    """Every option spelled out by the (sub)command ``args`` leads to, ``smsq dlq list`` too."""
    parser = _parser()
    options = set(parser._option_string_actions)
    for arg in args:
        parser = subparsers(parser).get(arg, parser)
        options |= set(parser._option_string_actions)
    return options


def yaml_run_commands(path: Path) -> Iterator[tuple[str, ...]]:
    """Each ``command:`` of a compose file or manifest."""
    for document in documents(path):
        for key, value in walk(document):
            if key == "command" and isinstance(value, list):
                yield tuple(str(word) for word in value)


def unit_run_commands(path: Path) -> Iterator[tuple[str, ...]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"Exec\w*=[-@:+!]*(.+)", line.strip())
        if match is not None:
            yield tuple(shlex.split(match[1]))


def procfile_run_commands(path: Path) -> Iterator[tuple[str, ...]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            command = line.split(":", 1)[1]
            for variable, value in PLATFORM_VARIABLES.items():
                command = command.replace(variable, value)
            yield tuple(shlex.split(command))


def run_commands() -> dict[str, list[tuple[str, ...]]]:
    """The smsq commands each deployment file runs, by path from the repository root."""
    found: dict[str, list[tuple[str, ...]]] = {}
    sources = [(PROCFILE, procfile_run_commands)]
    sources += [(p, yaml_run_commands) for p in YAML_FILES]
    sources += [(p, unit_run_commands) for p in UNIT_FILES]
    for path, read in sources:
        found[str(path.relative_to(ROOT))] = [
            ("smsq", *c[1:]) for c in read(path) if c and Path(c[0]).name == "smsq"
        ]
    return found


def mentioned_commands() -> dict[str, list[tuple[str, ...]]]:
    """smsq commands quoted in those files' comments: inside backticks (``smsq admin``,
    ``... exec worker smsq dlq list``), or after ``exec <service>`` outside them."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for path in [*YAML_FILES, *UNIT_FILES]:
        commands = []
        for line in path.read_text(encoding="utf-8").splitlines():
            quoted = re.findall(r"`([^`]*)`", line)
            outside = re.sub(r"`[^`]*`", "", line)
            commands += [m[1] for q in quoted if (m := re.search(r"\b(smsq [^#]+)", q))]
            commands += re.findall(r"\bexec(?: -T)? [\w-]+ (smsq [^#\\]+)", outside)
        found[str(path.relative_to(ROOT))] = [tuple(shlex.split(c)) for c in commands]
    return found


def _all_commands() -> list[tuple[str, str, tuple[str, ...]]]:
    return [(path, "runs", c) for path, cs in run_commands().items() for c in cs] + [
        (path, "mentions", c) for path, cs in mentioned_commands().items() for c in cs
    ]


def test_deployment_files_run_exactly_these_subcommands() -> None:
    found = {path: {c[1] for c in commands} for path, commands in run_commands().items()}
    assert found == RUNS
    assert set[str]().union(*RUNS.values()) - set(smsq_subcommands()) == set()


def test_comments_quote_exactly_these_subcommands() -> None:
    found = {c[1] for commands in mentioned_commands().values() for c in commands}
    assert found == MENTIONED
    assert MENTIONED - set(smsq_subcommands()) == set()


@pytest.mark.parametrize(
    ("path", "how", "argv"),
    _all_commands(),
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_smsq_command_is_accepted_by_its_parser(
    path: str, how: str, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """The subcommand exists, and its parser takes every flag and value given, each flag
    spelled out (argparse would also take an abbreviation: ``--thread`` for ``--threads``)."""
    subcommands = smsq_subcommands()
    assert argv[1] in subcommands, f"{path} {how} `smsq {argv[1]}`, which smsq does not have"
    flags = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    assert flags - option_strings(argv[1:]) == set(), f"{path} {how} `{shlex.join(argv)}`"
    try:
        args = _parser().parse_args(list(argv[1:]))
    except SystemExit:
        pytest.fail(f"{path} {how} `{shlex.join(argv)}`: {capsys.readouterr().err.strip()}")
    expected = subcommands[argv[1]].get_default("handler")
    assert expected is None or args.handler is expected


def test_every_procfile_process_is_deployed_everywhere() -> None:
    """What the Procfile runs also runs under compose, Kubernetes and systemd."""
    runs = {path: {c[1] for c in commands} for path, commands in run_commands().items()}
    processes = runs["Procfile"]
    k8s = set[str]().union(*(runs[str(p.relative_to(ROOT))] for p in K8S_DEPLOYMENTS))
    units = set[str]().union(*(runs[str(p.relative_to(ROOT))] for p in UNIT_FILES))
    assert processes - runs["deploy/compose.yaml"] == set()
    assert processes - k8s == set()
    assert processes - units == set()
    assert {p.stem for p in K8S_DEPLOYMENTS} == processes
    assert {p.stem.removeprefix("smsq-") for p in UNIT_FILES} == processes


# --- secrets ------------------------------------------------------------------------------------


def test_compose_gives_each_service_only_its_secrets() -> None:
    """Services built from smsq's image get the whole .env and blank what they must not have."""
    [compose] = documents(DEPLOY / "compose.yaml")
    services = {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "smsq:local"
    }
    assert set(services) == set(USES)
    for name, service in services.items():
        blanked = {key for key, value in service["environment"].items() if value == ""}
        assert SECRETS - blanked == USES[name], name


def secret_keys(path: Path) -> set[str]:
    """The keys of the ``smsq`` Secret that a manifest's containers read."""
    return {
        value["secretKeyRef"]["key"]
        for document in documents(path)
        for key, value in walk(document)
        if key == "valueFrom" and value.get("secretKeyRef", {}).get("name") == "smsq"
    }


def test_k8s_gives_each_deployment_only_its_secrets() -> None:
    assert {p.stem for p in K8S_DEPLOYMENTS} == set(USES)
    for path in K8S_DEPLOYMENTS:
        assert secret_keys(path) & SECRETS == USES[path.stem], path.name


def test_systemd_gives_each_unit_only_its_secrets() -> None:
    assert {p.stem.removeprefix("smsq-") for p in UNIT_FILES} == set(USES)
    for path in UNIT_FILES:
        text = path.read_text(encoding="utf-8")
        files = re.findall(r"^EnvironmentFile=-?(\S+)$", text, flags=re.MULTILINE)
        assert set(files) <= set(SYSTEMD_ENV_FILES), path.name
        unset = {
            name
            for line in re.findall(r"^UnsetEnvironment=(.*)$", text, re.MULTILINE)
            for name in line.split()
        }
        given = set[str]().union(*(SYSTEMD_ENV_FILES[f] for f in files))
        assert given - unset == USES[path.stem.removeprefix("smsq-")], path.name


def test_k8s_secret_example_matches_the_deployments_and_its_settings_validate() -> None:
    """The Secret has exactly the keys the Deployments read, and its placeholders (with the
    ConfigMap) pass every process's start-up checks, so the example can be tried as it is."""
    loaded = documents(DEPLOY / "k8s" / "secret.example.yaml")
    [secret] = [d["stringData"] for d in loaded if d["kind"] == "Secret"]
    [config] = [d["data"] for d in loaded if d["kind"] == "ConfigMap"]
    referenced = set[str]().union(*(secret_keys(p) for p in K8S_DEPLOYMENTS))
    assert set(secret) == referenced
    assert SECRETS - set(secret) == set()
    settings = Settings.from_env({**{k: str(v) for k, v in config.items()}, **secret})
    settings.require_credentials()
    settings.require_admin()
    settings.require_gateway()
    assert settings.webhook_secret.reveal()
    assert settings.callback_secret.reveal()
    assert all(a.callback_secret is not None for a in settings.producers)


PINNED_BASE = re.compile(r"FROM python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?")
"""An exact Python patch release on a named Debian release, optionally with its digest."""


def test_dockerfile_base_image_is_pinned_by_exact_tag() -> None:
    """A floating tag (python:3.11-slim) would rebuild on whatever was pushed last."""
    froms = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.upper().startswith("FROM ")
    ]
    assert froms == ["FROM python:3.11.12-slim-bookworm"]
    assert all(PINNED_BASE.fullmatch(line) for line in froms)


def test_every_deployment_disables_core_dumps() -> None:
    """A core file of any smsq process would hold its secrets: every unit and compose service
    says so (smsq also turns them off itself, which is what applies under Kubernetes)."""
    limits = {}
    for path in UNIT_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        service = lines[lines.index("[Service]") + 1 :]
        section = service[: next((i for i, s in enumerate(service) if s.startswith("[")), None)]
        limits[path.name] = [line for line in section if line.startswith("LimitCORE=")]
    assert limits == {path.name: ["LimitCORE=0"] for path in UNIT_FILES}
    assert len(limits) == 4
    compose = documents(DEPLOY / "compose.yaml")[0]
    smsq_services = {n: s for n, s in compose["services"].items() if n != "redis"}
    assert {n: s.get("ulimits") for n, s in smsq_services.items()} == {
        n: {"core": 0} for n in ("worker", "admin", "gateway", "callbacks")
    }
