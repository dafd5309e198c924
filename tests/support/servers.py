"""Real servers the tests start and stop themselves: a throwaway PostgreSQL and the portal under gunicorn."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "t3stK3y-9f8e7d6c5b4a3928171615141312111009080706050403020100abcdefXYZ",
    "PORTAL_PEPPERS": "1:Zr8Q2mX7vL4pT9wK1nB6cH3jF5dS0gA8eY2uI4oP7q",
    "PORTAL_SIGNING_KEY_ENCRYPTION_KEY": "Jq7o4yL2-8cWmZ1pX6vT3rN9bK5hF0dS4gA8eY2uI4o=",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "PORTAL_SECURE_SSL_REDIRECT": "0",
    "PORTAL_ISSUER": "http://127.0.0.1",
}


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> str | None:
    """Return the directory of PostgreSQL's server binaries, if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


class TempPostgres:
    """A PostgreSQL instance on its own data directory and port, run as the `postgres` user."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries not found")
        self.dir = tempfile.mkdtemp(prefix="portal-pg-")
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", self.dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [os.path.join(self.bin, tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.dir, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.dir, "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Gunicorn:
    """The portal served by gunicorn on a free loopback port with production settings."""

    def __init__(self, env: dict[str, str], workers: int = 1, threads: int = 1) -> None:
        self.port = free_port()
        self.env = {**os.environ, **PRODUCTION_ENV, **env}
        self.workers = workers
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        # Logs go to a file, not a pipe nobody reads (a full pipe would block the server).
        self._log = tempfile.NamedTemporaryFile(prefix="portal-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115

    def log_text(self) -> str:
        """Return everything the server has logged so far (read it before `stop`, which deletes it)."""
        return Path(self._log.name).read_text(errors="replace")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portal.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--timeout",
                "30",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def get(self, path: str, timeout: float = 15, headers: dict | None = None) -> tuple[int, bytes, dict]:
        """GET `path`; return status, body and headers (HTTP errors included)."""
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)
