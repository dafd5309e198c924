"""Real servers the tests start and stop themselves.

- `ServerProcess`: a server command on a free loopback port, run as a subprocess with its log in a
  file and stopped with its children; `Gunicorn` (the portal with production settings) and
  `DevServer` (`manage.py runserver`) are the two the tests use.
- `LocalHTTPServer`: an in-process HTTP server (a webhook receiver, a JWKS, an OIDC issuer) on a
  free loopback port, served from a daemon thread, optionally over TLS; `JWKSServer` publishes a
  JWKS, counts its fetches and answers 503 while `up` is false (a portal outage).
- `dripping_peer`: a loopback peer that answers one byte at a time (timeouts as a whole).
- `TempPostgres`: a throwaway PostgreSQL cluster (`tests.support.redis_server.TempRedis` for Redis).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def stop_process(proc: subprocess.Popen | None, *, group: bool = False, timeout: float = 10) -> None:
    """Terminate `proc` (its whole process group with `group`), then kill it if it has not exited in time."""
    if proc is None or proc.poll() is not None:
        return

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=timeout)


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


class ServerProcess:
    """A server command on a free loopback port, run from the project root as a subprocess.

    `command` is what to run (or a subclass says it, knowing `self.port`); `start` waits until the
    port accepts connections, `stop` ends the server and every process it started (it runs in its
    own session).
    """

    def __init__(
        self, env: dict[str, str], *, port: int | None = None, command: list[str] | str | None = None
    ) -> None:
        self.port = port or free_port()
        self.env = env
        self._command = command
        self.proc: subprocess.Popen | None = None
        # Logs go to a file, not a pipe nobody reads (a full pipe would block the server).
        self._log = tempfile.NamedTemporaryFile(prefix="portal-server-", suffix=".log", delete=False)  # noqa: SIM115

    def command(self) -> list[str] | str:
        """Return the command line (a string runs through the shell)."""
        if self._command is None:
            raise NotImplementedError("give a command or override command()")
        return self._command

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        """Return everything the server has logged so far (read it before `stop`, which deletes it)."""
        return Path(self._log.name).read_text(errors="replace")

    def start(self, timeout: float = 30) -> None:
        command = self.command()
        self.proc = subprocess.Popen(  # noqa: S602  a fixed command line, or the Makefile's own
            command,
            shell=isinstance(command, str),
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                status = self.proc.returncode
                raise RuntimeError(f"the server exited with status {status}:\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start within {timeout:.0f} s:\n{self.log_text()}")

    def stop(self) -> None:
        stop_process(self.proc, group=True)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Gunicorn(ServerProcess):
    """The portal served by gunicorn on a free loopback port with production settings."""

    def __init__(self, env: dict[str, str], workers: int = 1, threads: int = 1) -> None:
        super().__init__({**os.environ, **PRODUCTION_ENV, **env})
        self.workers = workers
        self.threads = threads

    def command(self) -> list[str]:
        return [
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
        ]

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

    def get(self, path: str, timeout: float = 15, headers: dict | None = None) -> tuple[int, bytes, dict]:
        """GET `path`; return status, body and headers (HTTP errors included)."""
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)


class DevServer(ServerProcess):
    """The portal under Django's development server (`manage.py runserver`), as `make run` serves it."""

    def command(self) -> list[str]:
        address = f"127.0.0.1:{self.port}"
        return [sys.executable, "manage.py", "runserver", address, "--noreload", "--skip-checks"]


class LocalHTTPServer:
    """An HTTP server in this process on a free loopback port, serving `handler` from a daemon thread.

    `with LocalHTTPServer(Handler) as server:` starts and stops it; `tls` (a server-side
    `ssl.SSLContext`) serves HTTPS.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.base = f"{'https' if tls is not None else 'http'}://127.0.0.1:{self.port}"
        # `shutdown` waits for the serving loop's next poll: at the default 0.5 s, that was half a
        # second at the end of every test with a receiver, issuer or JWKS (about 70 s of the suite).
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def dripping_peer(payload: bytes, *, read_request: bool = False, interval: float = 0.5):
    """Listen on a free loopback port and send the first connection `payload` one byte per `interval`.

    Yield the port. With `read_request`, read what the client sends first (an HTTP request)
    before dripping the answer; without, drip at once (a TLS server's handshake).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            if read_request:
                conn.recv(65536)
            try:
                for byte in payload:
                    conn.sendall(bytes([byte]))
                    time.sleep(interval)
            except OSError:
                pass

    threading.Thread(target=drip, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


class JWKSServer(LocalHTTPServer):
    """A real HTTP server publishing `jwks` (a dict), counting fetches; a 503 while `up` is false."""

    def __init__(self, jwks: dict):
        self.jwks = jwks
        self.fetches = 0
        self.up = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                if outer.up:
                    status, body = 200, json.dumps(outer.jwks).encode()
                else:
                    status, body = 503, b'{"detail": "unavailable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.url = f"{self.base}/.well-known/jwks.json"
