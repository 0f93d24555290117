"""What the distribution promises: one version, and a core that does not pull the web stack."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

import worker
from worker.cli import main
from worker.cli.commands import WEB_MODULES


ROOT = Path(__file__).resolve().parent.parent


def test_the_version_is_written_once_and_read_everywhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "worker/__init__.py"
    assert version("smsq") == worker.__version__
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"smsq {worker.__version__}\n"


def test_the_changelog_has_a_section_for_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"\n## [{worker.__version__}] - " in changelog


def test_the_web_extra_holds_exactly_what_the_web_commands_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    web = {
        r.split(">")[0].split("<")[0].split("=")[0].replace("-", "_")
        for r in project["project"]["optional-dependencies"]["web"]
    }
    core = {
        r.split(">")[0].split("<")[0].split("=")[0].replace("-", "_")
        for r in project["project"]["dependencies"]
    }
    assert web == set(WEB_MODULES)
    assert not web & core


def test_enqueueing_sending_and_callbacks_load_no_web_module() -> None:
    probe = (
        "import sys\n"
        "import producers, producers.enqueue, producers.store\n"
        "import worker.cli.commands, worker.send.runner, worker.send.runtime\n"
        "import worker.callbacks.dispatcher, worker.sandbox\n"
        f"print(sorted(m for m in {WEB_MODULES!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["admin", "gateway", "demo"])
def test_a_web_command_without_the_web_extra_says_what_to_install(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from importlib import util

    real_find_spec = util.find_spec
    monkeypatch.setattr(
        util,
        "find_spec",
        lambda name, *a: None if name in {"uvicorn", "jinja2"} else real_find_spec(name, *a),
    )

    assert main([command]) == 2

    assert capsys.readouterr().err == (
        f"smsq: configuration error: smsq {command}: needs the web extra, install smsq[web] "
        "(uvicorn, jinja2 missing)\n"
    )


def test_the_wheel_carries_every_file_the_packages_read(tmp_path: Path) -> None:
    """The Lua scripts, templates and type markers are read at run time: the wheel holds every
    tracked file of the two packages, and a worker installed from it loads its scripts."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(ROOT),
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("smsq-*.whl")
    tracked = subprocess.run(
        ["git", "ls-files", "producers", "worker"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
        held = set(archive.namelist())
    assert sorted(set(tracked) - held) == []
    site = tmp_path / "site"
    probe = (
        "import worker.store.lua as lua, worker.send.intake\n"
        f"assert lua.__file__.startswith({str(site)!r})\n"
        "print(len(lua.load('ledger_claim')) > 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        check=True,
    )
    assert done.stdout.strip() == "True"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split(" ")[0].split("==")
            pins[name.lower()] = version
    return pins


def test_the_runtime_lock_is_the_dev_lock_without_the_dev_tools() -> None:
    """The Docker image installs requirements.runtime.lock: the same versions as the dev lock
    the tests ran with, every runtime and web dependency, and none of the dev tools."""
    root = Path(__file__).resolve().parent.parent
    runtime, dev = _pins(root / "requirements.runtime.lock"), _pins(root / "requirements.lock")
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    needed = [
        re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower()
        for spec in [*project["dependencies"], *project["optional-dependencies"]["web"]]
    ]

    assert {name: dev.get(name) for name in runtime} == runtime
    assert set(needed) - set(runtime) == set()
    assert {"pytest", "mypy", "ruff", "playwright", "hypothesis", "dramatiq"} & set(
        runtime
    ) == set()
    assert "hatchling" in runtime
    assert "ARG LOCK=requirements.runtime.lock" in (root / "deploy" / "Dockerfile").read_text()
