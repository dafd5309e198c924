"""The benchmark harness: tools, PostgreSQL databases, servers under gunicorn, wrk, CPU accounting.

Nothing here knows what is measured (``suites.py``) or how it is printed (``report.py``).
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
RESULTS = BENCH / "results"
LUA = BENCH / "lua" / "request.lua"
PY = sys.executable
CORES = os.cpu_count() or 1
CONCURRENCY = 16
NOT_YET = "not available yet"
#: The HTTP benchmarks: one credential, and many presented round-robin (issue 16).
HTTP_BENCHMARKS = ("token_issuance", "key_verification", "token_issuance_many", "key_verification_many")
#: The portal served with usage metering off (PORTAL_USAGE_METERING=0), beside the metered portal.
UNMETERED = "portal_unmetered"


@dataclass(frozen=True)
class Mode:
    name: str
    duration: int  # seconds of measured load per HTTP benchmark
    warmup: int  # seconds of light load (one connection per worker) before measuring
    inprocess: float  # seconds per in-process benchmark
    rounds: int  # HTTP benchmarks run this many times, interleaved; the best round is reported
    scale: tuple[int, int]  # API keys in the table for the small and the large scale measurement
    many: tuple[int, int]  # distinct API keys and applications presented round-robin (many-credential rows)
    profile: bool = False  # sample one worker with py-spy during the measured load


class Unavailable(Exception):
    """A project feature this benchmark needs has not landed yet."""


class BenchError(Exception):
    """Something that exists answered wrongly."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Tools and machine --------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Return wrk's path, installing Debian's package first when it is missing (CI starts fresh)."""
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk is missing: installing Debian's package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], env=env).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is still missing after apt-get install")
    return path


def machine() -> dict:
    """Describe the machine: cores, CPU model, memory, versions."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {
        "cores": CORES,
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk_version[0] if wrk_version else "unknown",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- PostgreSQL ---------------------------------------------------------------------------------


class Postgres:
    """Create, inspect and drop the bench_… databases on one server."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _connect(self, dbname: str = "postgres"):
        import psycopg  # the bench extra's driver; only the harness's own queries need it

        return psycopg.connect(f"{self.url}/{dbname}", autocommit=True, connect_timeout=3)

    def check(self) -> str:
        with self._connect() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def recreate(self, name: str) -> str:
        assert re.fullmatch(r"bench_[a-z0-9_]+", name), name
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"

    def drop(self, name: str) -> None:
        assert re.fullmatch(r"bench_[a-z0-9_]+", name), name
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def backend_pids(self, name: str) -> list[int]:
        """Return the process ids of the backends connected to ``name`` (same machine)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name]).fetchall()
        return [row[0] for row in rows]

    def rows_written(self, name: str) -> int:
        """Return rows inserted, updated and deleted in ``name`` so far (once its backends flushed)."""
        with self._connect() as conn:
            for _ in range(50):  # backends flush their statistics when they exit
                busy = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]
                ).fetchone()[0]
                if not busy:
                    break
                time.sleep(0.1)
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = %s",
                [name],
            ).fetchone()
        return int(row[0]) if row else 0


# --- Targets: the portal and its peers ----------------------------------------------------------


@dataclass
class Target:
    """One server under test: how to set it up and serve it."""

    name: str
    label: str
    database: str
    cwd: Path
    wsgi: str
    env: dict[str, str]
    setup_log: list[str] = field(default_factory=list)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [PY, "manage.py", *args], cwd=self.cwd, env=self.env, capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise BenchError(f"{self.name}: manage.py {args[0]} failed: " + " | ".join(tail))
        return proc


def base_env() -> dict[str, str]:
    """Return the environment without anything that would point a server at another setup."""
    drop = {"DJANGO_SETTINGS_MODULE", "DEBUG", "DATABASE_URL", "REDIS_URL", "PEER_VARIANT"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PORTAL_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def json_from(output: str) -> dict:
    """Return the last JSON object printed on its own line."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no JSON object in the output: {output[-200:]!r}")


def unknown_command(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode != 0 and "Unknown command" in (proc.stderr + proc.stdout)


# --- Serving and load ---------------------------------------------------------------------------


class Server:
    """A gunicorn serving one target on a loopback port; measures its workers."""

    def __init__(self, target: Target, log_dir: Path):
        self.target = target
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{target.name}-gunicorn.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        cmd = [
            PY, "-m", "gunicorn", self.target.wsgi,
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(CORES),
            "--worker-class", "sync",
            "--timeout", "120",
            "--graceful-timeout", "3",
            "--log-level", "warning",
            "--error-logfile", str(self.log_path),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=self.target.cwd, env=self.target.env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.target.name}: gunicorn exited; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if len(self.workers()) >= CORES:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.target.name}: gunicorn did not start in 60 s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            # Graceful stop: workers finish the request in hand (at most --graceful-timeout).
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def worker_cpu_seconds(self) -> float:
        total = 0.0
        for worker in self.workers():
            try:
                times = worker.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def worker_memory_mb(self) -> dict:
        """Return the largest current and peak (VmHWM) resident set of any worker, in MiB."""
        current, peak = 0, 0
        for worker in self.workers():
            try:
                current = max(current, worker.memory_info().rss)
                status = Path(f"/proc/{worker.pid}/status").read_text()
                match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
                if match:
                    peak = max(peak, int(match.group(1)) * 1024)
            except (psutil.NoSuchProcess, OSError):
                pass
        return {"rss_mb": round(current / 2**20, 1), "peak_rss_mb": round(peak / 2**20, 1)}

    def request(self, path: str, *, headers: dict, form: str | None = None) -> tuple[int, bytes]:
        data = form.encode() if form is not None else None
        headers = {"X-Forwarded-Proto": "https", "Accept": "application/json", **headers}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (loopback URL we built)
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def run_wrk(url: str, *, env: dict[str, str], seconds: int, connections: int) -> dict:
    """Run wrk with bench/lua/request.lua; return its numbers and the CPU it used itself."""
    threads = max(1, min(CORES, connections))
    env = {**env, "BENCH_THREADS": str(threads)}
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
        "-s", str(LUA), url,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 gives the child's own CPU time: the load generator's cost, reported beside the result.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {stderr.strip()[-300:]}")
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk printed no BENCH_JSON line: {stdout[-300:]!r}")
    result = json.loads(line.removeprefix("BENCH_JSON "))
    cpu = usage.ru_utime + usage.ru_stime
    result["wrk_cpu_seconds"] = round(cpu, 3)
    result["wrk_cpu_cores"] = round(cpu / wall, 3)
    return result


@dataclass
class Planned:
    """An HTTP benchmark ready to run against a set-up target."""

    target: Target
    case: HttpCase
    memory_key: str
    extra: dict = field(default_factory=dict)


@dataclass
class HttpCase:
    """One HTTP benchmark against one target: path, headers and form body for wrk."""

    benchmark: str
    path: str
    authorization: str
    form: str | None = None
    expect: int = 200
    #: One Authorization value per line, presented round-robin by wrk (the many-credential rows).
    credentials_file: Path | None = None


def cpu_seconds(pids: list[int]) -> float:
    """Return the user + system CPU seconds used so far by the live processes among ``pids``."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def machine_busy_seconds() -> float:
    """Return the CPU seconds all cores have spent on anything but idling, since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def run_http_case(server: Server, case: HttpCase, mode: Mode, pg: Postgres) -> dict:
    """Probe once, warm up lightly, then measure at concurrency 16.

    Beside wrk's numbers, record where the CPU went during the measured run: gunicorn workers,
    the PostgreSQL backends serving them, wrk itself, and everything else on the machine
    ("other load": other processes sharing the cores, which makes the numbers noisier).
    """
    status, body = server.request(case.path, headers={"Authorization": case.authorization}, form=case.form)
    if status == 404:
        raise Unavailable(f"{case.path} answered 404")
    if status != case.expect:
        raise BenchError(f"{server.target.name}: probe of {case.path} answered {status}: {body[:200]!r}")
    env = {
        "BENCH_AUTHORIZATION": case.authorization,
        "BENCH_FORM": case.form or "",
        "BENCH_CREDENTIALS_FILE": str(case.credentials_file or ""),
    }
    url = server.base_url + case.path
    warm = run_wrk(url, env=env, seconds=mode.warmup, connections=CORES)
    workers = [w.pid for w in server.workers()]
    backends = pg.backend_pids(server.target.database)
    profiler = start_profiler(workers[0], mode, server) if mode.profile and workers else None
    before = (cpu_seconds(workers), cpu_seconds(backends), machine_busy_seconds(), time.monotonic())
    result = run_wrk(url, env=env, seconds=mode.duration, connections=CONCURRENCY)
    after = (cpu_seconds(workers), cpu_seconds(backends), machine_busy_seconds(), time.monotonic())
    server_cpu, db_cpu, busy, wall = (b - a for a, b in zip(before, after, strict=True))
    ok = result["requests"] - result["errors"]["status"]
    seconds = result["duration_us"] / 1e6
    lat = result["latency_us"]
    errors = sum(result["errors"].values())
    per_request = 1000 / max(1, result["requests"])
    other = busy - server_cpu - db_cpu - result["wrk_cpu_seconds"]
    row = {
        "status": "ok",
        "requests": result["requests"],
        "errors": errors,
        "throughput_rps": round(ok / seconds, 1),
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "wrk_cpu_cores": result["wrk_cpu_cores"],
        "server_cpu_ms_per_request": round(server_cpu * per_request, 3),
        "db_cpu_ms_per_request": round(db_cpu * per_request, 3),
        "other_load_cores": round(max(0.0, other) / wall, 2),
        "served_total": 1 + warm["requests"] + result["requests"],
        "wrk": result,
    }
    if profiler:
        row["profile"] = finish_profiler(*profiler)
    if errors > max(2, result["requests"] // 100):
        row["status"] = "error"
        row["reason"] = f"{errors} of {result['requests']} requests failed: {result['errors']}"
    return row


def start_profiler(pid: int, mode: Mode, server: Server) -> tuple[subprocess.Popen, Path] | None:
    """Sample worker ``pid`` with py-spy for the measured run (py-spy needs ptrace; root has it)."""
    py_spy = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    if not py_spy:
        log("py-spy not found: no profile")
        return None
    out = server.log_path.with_name(f"{server.target.name}-{server.port}-profile.txt")
    cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(mode.duration), "--rate", "200",
           "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def finish_profiler(proc: subprocess.Popen, out: Path) -> dict:
    """Summarise py-spy's collapsed stacks: where the worker's samples ended, by package and function."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if not out.exists():
        return {"error": "py-spy wrote no profile"}
    by_package: dict[str, int] = {}
    by_function: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        leaf = stack.rsplit(";", 1)[-1]
        match = re.match(r"(?P<func>.*) \((?P<file>.*):\d+\)$", leaf)
        func, path = (match["func"], match["file"]) if match else (leaf, "?")
        package = frame_package(path)
        by_package[package] = by_package.get(package, 0) + samples
        name = f"{package}: {func}"
        by_function[name] = by_function.get(name, 0) + samples

    def top(counts: dict[str, int], n: int) -> list[list]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:n]
        return [[name, round(100 * c / max(1, total), 1)] for name, c in ranked]

    return {
        "file": str(out.relative_to(ROOT)),
        "samples": total,
        "self_time_by_package_pct": top(by_package, 8),
        "self_time_by_function_pct": top(by_function, 8),
    }


def frame_package(path: str) -> str:
    """Name the package a frame's file belongs to (a site-packages top level, the project, stdlib).

    py-spy shortens paths on ``sys.path`` to their module path ("django/db/models/query.py").
    """
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if not path.startswith("/"):
        return path.split("/", 1)[0].removesuffix(".py")
    try:
        return Path(path).relative_to(ROOT).parts[0]
    except ValueError:
        return "python stdlib" if "/lib/python" in path else Path(path).name


def basic(client_id: str, client_secret: str) -> str:
    """Return an RFC 6749 §2.3.1 Basic header value (form-encoded id and secret)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()
