"""README's two commands stay true: CI runs the test command verbatim, and both set up .venv."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_the_run_and_test_commands() -> None:
    commands = _commands()
    run = [c for c in commands if "streamlit run app.py" in c]
    test = [c for c in commands if "pytest" in c and "\n" not in c]
    assert run and test
    for command in (run[0], test[0]):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -r requirements")


def test_ci_runs_the_readme_test_command() -> None:
    test = next(c for c in _commands() if "pytest" in c and "\n" not in c)
    ci = (REPO / ".ci" / "run").read_text()
    # CI adds -q to pip only; the rest of the line is the README's.
    assert test.replace("pip install -r", "pip install -q -r") in ci


def test_requirements_pin_every_package() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                assert "==" in line, f"{name}: {line!r} is not pinned"
    assert "torch==2.13.0" in (REPO / "requirements.txt").read_text()


def test_plain_pytest_is_the_fast_loop_and_the_readme_command_runs_everything() -> None:
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    addopts = options["ini_options"]["addopts"]
    assert "-m 'not slow and not e2e'" in addopts
    test = next(c for c in _commands() if "pytest" in c and "\n" not in c)
    assert test.endswith('pytest -q -m ""')  # the last -m wins: every test is selected
    markers = " ".join(options["ini_options"]["markers"])
    assert "slow:" in markers and "e2e:" in markers
