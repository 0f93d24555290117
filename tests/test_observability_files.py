"""deploy/prometheus/smsq-alerts.yaml and deploy/grafana/smsq-dashboard.json against what
``/metrics`` really exposes: every smsq metric and label they use exists, every rule is well
formed (promtool when installed, else this parser)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from producers.enqueue import Producer
from tests.helpers.processes import Workers
from worker.admin.metrics import render


ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "smsq-alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "smsq-dashboard.json"
METRIC = re.compile(r"\b(smsq_[a-z_]+)\b(\{[^}]*\})?")
LABEL = re.compile(r"([a-z_]+)\s*=~?")
BY = re.compile(r"\bby\s*\(([^)]*)\)")


def _exposed(redis: Redis) -> dict[str, set[str]]:
    """Sample name -> its label names, from a real scrape."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(render(redis).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return exprs


def test_every_rule_is_complete() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"].startswith("Smsq")
            assert rule["annotations"]["summary"]
            assert rule["annotations"]["runbook"].startswith("RUNBOOK section")
            assert rule["labels"]["severity"] in ("page", "ticket")
            names.append(rule["alert"])
    assert len(names) == len(set(names))
    promtool = shutil.which("promtool")
    if promtool is not None:  # Debian's prometheus package; the checks above hold without it
        done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_files_use_only_metrics_and_labels_that_metrics_exposes(
    redis: Redis, producer: Producer, workers: Workers
) -> None:
    producer.enqueue({"key": "m", "to": ["0612345678"], "text": "Code"})
    assert workers.run_burst().returncode == 0
    exposed = _exposed(redis)

    used = 0
    for expr in _expressions():
        for match in METRIC.finditer(expr):
            name, matchers = match.group(1), match.group(2) or ""
            assert name in exposed, f"{name} (in {expr!r}) is not on /metrics"
            for label in LABEL.findall(matchers):
                assert label in exposed[name], f"{name} has no label {label!r} ({expr!r})"
            used += 1
        for group in BY.findall(expr):
            labels = {x.strip() for x in group.split(",") if x.strip()}
            names = [m.group(1) for m in METRIC.finditer(expr)]
            assert labels <= set().union(*(exposed[n] for n in names)), expr
    assert used >= 20


@pytest.mark.parametrize(
    "panel", json.loads(DASHBOARD.read_text())["panels"], ids=lambda p: p["title"]
)
def test_each_dashboard_panel_is_placed_and_queries_prometheus(panel: dict[str, object]) -> None:
    grid = panel["gridPos"]
    assert isinstance(grid, dict)
    assert 0 <= grid["x"] < 24
    assert grid["x"] + grid["w"] <= 24
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert panel["targets"]
