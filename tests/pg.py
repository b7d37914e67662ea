"""A real PostgreSQL 15 server for tests and benchmarks, from Debian's binaries, in a temp folder.

``PgServer.start()`` runs ``initdb`` and ``pg_ctl start`` on a Unix socket only (no TCP
listener), ``create_database()`` hands out a fresh database and its SQLAlchemy URL, ``stop()``
shuts the server down and removes the folder. As root the server runs as the ``postgres`` user
(initdb refuses root); otherwise as the current user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("PAYOFF_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S = 120


def missing_reason() -> str | None:
    """Why no server can be started here, or None when one can."""
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
        return (
            f"PostgreSQL 15 server binaries not found in {PG_BIN} "
            "(Debian: apt-get install -y postgresql)"
        )
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no 'postgres' user to run the server as"
    return None


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PgServer:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="payoff-pg-")))
    port: int = 0
    settings: tuple[str, ...] = ()
    started: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def start(self) -> PgServer:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.socket_dir.mkdir(parents=True)
        self.root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self.port = self.port or _free_port()
        self._run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres"]
            + ["-E", "UTF8", "--no-sync"]
        )
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=''"
        for setting in self.settings:
            options += f" -c {setting}"
        self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-o", options, "-w"]
            + ["-t", str(START_TIMEOUT_S), "-l", str(self.root / "server.log"), "start"]
        )
        self.started = True
        return self

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
            autocommit=True,
        ) as connection:  # fmt: skip
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.split("/")[3].split("?")[0]
        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
            autocommit=True,
        ) as connection:  # fmt: skip
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                _as_server_user(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"]
                ),
                capture_output=True,
                timeout=60,
                check=False,
            )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(
            _as_server_user(command), capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-1500:]}\n{self.log_tail()}"
            )


def _free_port() -> int:
    """A port number nobody listens on (the server only uses it to name its socket file)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
