"""A real ``streamlit run app.py`` server on a free port, with its own PAYOFF_HOME.

The server is started once per module and stopped afterwards, together with any training
worker it launched that is still running (workers start in their own session so that leaving
a page does not stop them; here nothing may outlive the tests).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT_S = 90
STOP_TIMEOUT_S = 15


@dataclass(frozen=True)
class Server:
    url: str
    home: Path
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.read().decode().strip() == "ok":
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"streamlit did not answer /_stcore/health in {HEALTH_TIMEOUT_S} s:\n{log_tail(log)}"
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


def _stop_workers(home: Path) -> None:
    """Kill the workers this server started that are still alive: those of active training
    runs, and the local job worker (which would idle a while before exiting), by their pid."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"core.cli\0worker" in cmdline and f"PAYOFF_HOME={home}".encode() in environ:
            os.kill(int(proc.name), signal.SIGTERM)
    database = home / "payoff.db"
    if not database.exists():
        return
    with sqlite3.connect(database) as connection:
        pids = {
            pid
            for (pid,) in connection.execute(
                "SELECT pid FROM training_run WHERE status IN ('queued', 'running')"
            )
            if pid
        }
    connection.close()
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"core.cli" in cmdline:
            os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="module")
def streamlit_server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("e2e_home")
    log = home / "streamlit.log"
    port = free_port()
    env = {
        **os.environ,
        "PAYOFF_HOME": str(home),
        "PAYOFF_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("PAYOFF_DB_URL", None)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
    ]
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield Server(url=url, home=home, log=log)
    finally:
        _stop(process)
        _stop_workers(home)
