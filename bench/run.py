"""Run Identity Portal's benchmark suite side by side with its peers (see docs/performance.md).

    python bench/run.py            # the whole suite (make bench)
    python bench/run.py --smoke    # every benchmark for a few seconds (make bench-smoke)

Each server (Identity Portal and the three peers in bench/peers/) runs under gunicorn with one
sync worker per core on loopback, with DEBUG off and its own fresh PostgreSQL database named
``bench_…``. wrk drives the load. A project feature that has not landed yet is reported as
"not available yet" and the run goes on; a pinned interface that answers wrongly is an error
and makes the run exit non-zero.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import secrets
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


FULL = Mode(
    "full", duration=10, warmup=2, inprocess=3.0, rounds=3, scale=(10_000, 1_000_000), many=(10_000, 1_000)
)
SMOKE = Mode("smoke", duration=3, warmup=1, inprocess=0.5, rounds=1, scale=(1_000, 20_000), many=(1_000, 100))


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
        import psycopg

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


# --- The suite ----------------------------------------------------------------------------------


class Suite:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.mode = dataclasses.replace(SMOKE if args.smoke else FULL, profile=args.profile)
        self.pg = Postgres(args.pg_url)
        self.started = dt.datetime.now(dt.UTC)
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        self.log_dir = RESULTS / "logs" / f"{stamp}-{self.mode.name}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.results_path = RESULTS / f"{stamp}-{self.mode.name}.json"
        self.databases: list[str] = []
        self.http: dict[str, dict[str, dict]] = {bench: {} for bench in HTTP_BENCHMARKS}
        self.memory: dict[str, dict] = {}
        self.inprocess: dict[str, list[dict]] = {"portal": [], "peer": []}
        self.redis_url = ""
        self.planned: list[Planned] = []
        self.portal: Target | None = None
        self.scale: dict = scale_unavailable("the portal was not run")
        self.later: list = []
        self.credential_files: list[Path] = []

    # Secrets are fresh and strong for each run, never printed.
    def portal_target(self) -> Target:
        from cryptography.fernet import Fernet

        database = "bench_portal"
        env = base_env()
        env.update(
            DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(64),
            PORTAL_PEPPERS=f"1:{secrets.token_urlsafe(48)}",
            PORTAL_SIGNING_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
            ALLOWED_HOSTS="127.0.0.1",
            PORTAL_SECURE_SSL_REDIRECT="0",
            # wrk stands in for the TLS-terminating proxy and sends X-Forwarded-Proto: https.
            PORTAL_PROXY_SSL_HEADER="1",
            PORTAL_TRUSTED_PROXIES="127.0.0.1",
            PORTAL_ISSUER="https://127.0.0.1",
            PORTAL_LOG_LEVEL="WARNING",
            # The per-application issuance limit is a policy value (600/min by default); the
            # benchmark measures capacity with one application, so it lifts the limit.
            PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE="0",
            DATABASE_URL=self.pg.recreate(database),
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        self.databases.append(database)
        return Target("portal", "Identity Portal", database, ROOT, "portal.wsgi:application", env)

    def peer_target(self, variant: str, label: str) -> Target:
        database = f"bench_peer_{variant}"
        env = base_env()
        env.update(
            PEER_VARIANT=variant,
            SECRET_KEY=secrets.token_urlsafe(64),
            ALLOWED_HOSTS="127.0.0.1",
            DATABASE_URL=self.pg.recreate(database),
        )
        self.databases.append(database)
        return Target(variant, label, database, PEERS, "peers.wsgi:application", env)

    def setup_redis(self) -> None:
        """Use Redis DB 13 as the portal's shared cache when a Redis answers (as in production)."""
        if self.args.no_redis:
            return
        try:
            import redis

            client = redis.Redis.from_url(self.args.redis_url, socket_connect_timeout=0.5)
            client.flushdb()
            self.redis_url = self.args.redis_url
        except Exception as exc:  # Redis is optional for the portal
            log(f"Redis not used ({type(exc).__name__}); the portal caches per process")

    # --- Portal ---------------------------------------------------------------------------------

    def run_portal(self) -> None:
        target = self.portal = self.portal_target()
        log("portal: migrate, seed_demo --force, collectstatic, credentials")
        target.manage("migrate", "--noinput", "-v0")
        target.manage("seed_demo", "--force")
        target.manage("collectstatic", "--noinput", "-v0")
        # Make sure a JWT signing key exists (pinned command; absent until issue 4 lands).
        proc = target.manage("rotate_signing_key", check=False)
        if proc.returncode != 0 and not unknown_command(proc):
            raise BenchError(f"portal: rotate_signing_key failed: {proc.stderr.strip()[-300:]}")
        owner = ["--org", "acme", "--owner", "owner@acme.example", "--scopes", "orders:read"]

        api_key = ""
        proc = target.manage("create_api_key", *owner, "--name", "bench-http", "--json", check=False)
        if unknown_command(proc):
            self.http["key_verification"]["portal"] = unavailable_row("manage.py create_api_key not found")
        elif proc.returncode != 0:
            raise BenchError(f"portal: create_api_key failed: {proc.stderr.strip()[-300:]}")
        else:
            api_key = json_from(proc.stdout)["key"]

        client_auth = ""
        proc = target.manage("create_m2m_app", *owner, "--name", "bench-http", "--json", check=False)
        if unknown_command(proc):
            self.http["token_issuance"]["portal"] = unavailable_row("manage.py create_m2m_app not found")
        elif proc.returncode != 0:
            raise BenchError(f"portal: create_m2m_app failed: {proc.stderr.strip()[-300:]}")
        else:
            app = json_from(proc.stdout)
            client_auth = basic(app["client_id"], app["client_secret"])

        if api_key:
            case = HttpCase("key_verification", "/api/v1/whoami", f"Bearer {api_key}")
            self.planned.append(Planned(target, case, "portal (whoami)"))
        if client_auth:
            case = HttpCase(
                "token_issuance", "/oauth/token", client_auth, form="grant_type=client_credentials"
            )
            self.planned.append(Planned(target, case, "portal (token)"))
        self.later.append(lambda: self.run_portal_inprocess(target, api_key=api_key, client_auth=client_auth))
        if api_key and client_auth:
            self.plan_portal_many(target)

    def plan_portal_many(self, target: Target) -> None:
        """Create many keys and applications through the services; plan the many-credential rows."""
        keys, apps = self.mode.many
        log(f"portal: {keys:,} API keys and {apps:,} applications for the many-credential rows")
        cmd = [
            PY,
            str(BENCH / "many.py"),
            "--keys",
            str(keys),
            "--apps",
            str(apps),
            "--out-dir",
            str(self.log_dir),
        ]
        proc = subprocess.run(cmd, cwd=ROOT, env=target.env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"portal: many.py failed: {proc.stderr.strip()[-500:]}")
        log(f"portal: created them in {json_from(proc.stdout)}")
        for benchmark, path, file, form in (
            ("key_verification_many", "/api/v1/whoami", "portal-keys.txt", None),
            ("token_issuance_many", "/oauth/token", "portal-apps.txt", "grant_type=client_credentials"),
        ):
            self.plan_many(target, benchmark, path, self.log_dir / file, form, f"portal ({benchmark})")

    def plan_many(
        self, target: Target, benchmark: str, path: str, file: Path, form: str | None, memory_key: str
    ) -> None:
        """Plan a many-credential row: wrk presents every line of ``file`` round-robin."""
        self.credential_files.append(file)
        first = file.read_text().splitlines()[0]
        case = HttpCase(benchmark, path, first, form=form, credentials_file=file)
        self.planned.append(Planned(target, case, memory_key))

    def run_portal_inprocess(self, target: Target, *, api_key: str, client_auth: str) -> None:
        log("portal: in-process benchmarks")
        with Server(target, self.log_dir) as server:
            access_token = ""
            if client_auth:
                status, body = server.request(
                    "/oauth/token",
                    headers={"Authorization": client_auth},
                    form="grant_type=client_credentials",
                )
                if status == 200:
                    access_token = json.loads(body)["access_token"]
            env = {**target.env, "BENCH_API_KEY": api_key, "BENCH_ACCESS_TOKEN": access_token}
            # In-process numbers are for the process-local cache: a cache hit costs no network hop.
            env.pop("REDIS_URL", None)
            audience = env.get("PORTAL_DEFAULT_AUDIENCE", f"{env['PORTAL_ISSUER']}/api")
            args = [
                "--jwks-url", f"{server.base_url}/.well-known/jwks.json",
                "--issuer", env["PORTAL_ISSUER"],
                "--audience", audience,
            ]  # fmt: skip
            self.inprocess["portal"] = self.inprocess_rows("portal", env, args)

    # --- Peers ----------------------------------------------------------------------------------

    def run_dot(self, variant: str, label: str) -> None:
        target = self.peer_target(variant, label)
        log(f"{variant}: migrate and seed")
        target.manage("migrate", "--noinput", "-v0")
        many = self.log_dir / f"{variant}-apps.txt"
        # The stock hasher costs ~0.2 s per secret: only the fast-hasher peer gets the many apps.
        count = self.mode.many[1] if variant == "dot_fast" else 0
        app = json_from(target.manage("peer_seed", "--count", str(count), "--output", str(many)).stdout)
        if count:
            self.plan_many(
                target, "token_issuance_many", "/oauth/token", many, "grant_type=client_credentials", variant
            )
        case = HttpCase(
            "token_issuance",
            "/oauth/token",
            basic(app["client_id"], app["client_secret"]),
            form="grant_type=client_credentials",
        )
        self.planned.append(Planned(target, case, variant, {"stored_hasher": app["stored_hasher"]}))

    def run_apikey(self) -> None:
        target = self.peer_target("apikey", "djangorestframework-api-key HasAPIKey")
        log("apikey: migrate and seed")
        target.manage("migrate", "--noinput", "-v0")
        many = self.log_dir / "apikey-keys.txt"
        count = str(self.mode.many[0])
        key = json_from(target.manage("peer_seed", "--count", count, "--output", str(many)).stdout)["key"]
        case = HttpCase("key_verification", "/api/v1/whoami", f"Api-Key {key}")
        self.planned.append(Planned(target, case, "apikey"))
        self.plan_many(target, "key_verification_many", "/api/v1/whoami", many, None, "apikey")

        def inprocess():
            log("peer: in-process benchmarks")
            self.inprocess["peer"] = self.inprocess_rows("peer", {**target.env, "BENCH_API_KEY": key}, [])

        self.later.append(inprocess)

    # --- Shared steps ---------------------------------------------------------------------------

    def serve_case(self, planned: Planned, round_no: int) -> None:
        """Serve the target afresh, run one HTTP benchmark and record memory and rows written.

        Over several rounds, keep the best (noise on a shared machine only slows things down),
        but any round that failed makes the row an error.
        """
        target, case = planned.target, planned.case
        previous = self.http[case.benchmark].get(target.name)
        if previous and previous["status"] != "ok":
            return
        written_before = self.pg.rows_written(target.database)
        log(
            f"{target.name}: {case.benchmark}, round {round_no}/{self.mode.rounds} "
            f"({self.mode.duration} s at concurrency {CONCURRENCY})"
        )
        try:
            with Server(target, self.log_dir) as server:
                row = run_http_case(server, case, self.mode, self.pg)
                memory = server.worker_memory_mb()
        except Unavailable as exc:
            self.http[case.benchmark][target.name] = unavailable_row(str(exc))
            return
        except BenchError as exc:
            self.http[case.benchmark][target.name] = {"status": "error", "reason": str(exc)}
            raise
        written = self.pg.rows_written(target.database) - written_before
        row["db_rows_written_per_request"] = round(written / row["served_total"], 3)
        row["label"] = target.label
        row.update(planned.extra)
        seen = self.memory.get(planned.memory_key, {"rss_mb": 0.0, "peak_rss_mb": 0.0})
        self.memory[planned.memory_key] = {k: max(seen[k], memory[k]) for k in seen}
        row["peak_rss_mb"] = self.memory[planned.memory_key]["peak_rss_mb"]
        row["rounds_rps"] = [*(previous or {}).get("rounds_rps", []), row["throughput_rps"]]
        if previous is None or row["status"] != "ok" or row["throughput_rps"] > previous["throughput_rps"]:
            self.http[case.benchmark][target.name] = row
        else:
            previous["rounds_rps"] = row["rounds_rps"]

    def run_scale(self) -> None:
        """Load the portal's key table to the small then the large size and time verification."""
        small, large = self.mode.scale
        log(f"portal: scale ({small:,} then {large:,} API keys, COPY-loaded)")
        env = {k: v for k, v in self.portal.env.items() if k != "REDIS_URL"}
        cmd = [PY, str(BENCH / "scale.py"), "--small", str(small), "--large", str(large),
               "--seconds", str(self.mode.inprocess)]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if proc.returncode != 0 or line is None:
            self.scale = {"keys": {"status": "error", "reason": "scale.py failed"}, "inventory": {}}
            raise BenchError(f"scale.py failed: {proc.stderr.strip()[-500:]}")
        self.scale = json.loads(line.removeprefix("BENCH_JSON "))

    def inprocess_rows(self, side: str, env: dict[str, str], args: list[str]) -> list[dict]:
        cmd = [PY, str(BENCH / "inprocess.py"), side, "--seconds", str(self.mode.inprocess), *args]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if proc.returncode != 0 or line is None:
            raise BenchError(f"inprocess.py {side} failed: {proc.stderr.strip()[-500:]}")
        return json.loads(line.removeprefix("BENCH_JSON "))

    @staticmethod
    def guarded(step, failures: list[str]) -> None:
        try:
            step()
        except BenchError as exc:
            failures.append(str(exc))
            log(f"ERROR {exc}")

    def run(self) -> int:
        log(f"mode {self.mode.name}; PostgreSQL {self.pg.check()}; {CORES} cores")
        self.setup_redis()
        failures: list[str] = []
        steps = [
            ("portal", self.run_portal),
            ("dot_stock", lambda: self.run_dot("dot_stock", "django-oauth-toolkit, stock (PBKDF2)")),
            ("dot_fast", lambda: self.run_dot("dot_fast", "django-oauth-toolkit, fast hasher")),
            ("apikey", self.run_apikey),
        ]
        try:
            for name, step in steps:
                if self.args.only and name not in self.args.only:
                    continue
                self.guarded(step, failures)
            # Interleave targets round by round so that a burst of foreign load hits all alike.
            for round_no in range(1, self.mode.rounds + 1):
                for planned in self.planned:
                    self.guarded(lambda p=planned, r=round_no: self.serve_case(p, r), failures)
            for step in self.later:
                self.guarded(step, failures)
            if self.portal:
                self.guarded(self.run_scale, failures)
        finally:
            for path in self.credential_files:  # live secrets of throwaway databases: not kept
                path.unlink(missing_ok=True)
            if not self.args.keep_databases:
                for database in self.databases:
                    self.pg.drop(database)
        report = self.report(failures)
        self.results_path.write_text(json.dumps(report, indent=2))
        (RESULTS / f"latest-{self.mode.name}.json").write_text(json.dumps(report, indent=2))
        print_report(report)
        log(f"results: {self.results_path.relative_to(ROOT)}; server logs: {self.log_dir.relative_to(ROOT)}")
        errors = failures + [
            f"{bench}/{name}: {row.get('reason')}"
            for bench, rows in self.http.items()
            for name, row in rows.items()
            if row["status"] == "error"
        ]
        for rows in self.inprocess.values():
            errors += [f"in-process {r['name']}: {r.get('reason')}" for r in rows if r["status"] == "error"]
        errors += [
            f"scale {k}: {v.get('reason')}" for k, v in self.scale.items() if v.get("status") == "error"
        ]
        for message in errors:
            log(f"FAILED {message}")
        return 1 if errors else 0

    def report(self, failures: list[str]) -> dict:
        report = {
            "date": self.started.isoformat(timespec="seconds"),
            "mode": self.mode.__dict__,
            "machine": machine(),
            "config": {
                "server": f"gunicorn, {CORES} sync workers, loopback, DEBUG off",
                "concurrency": CONCURRENCY,
                "portal_cache": "Redis " + self.redis_url if self.redis_url else "per-process (LocMem)",
                "portal_cache_in_process": "per-process (LocMem)",
                "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]),
            },
            "token_issuance": {
                "rows": self.http["token_issuance"],
                "ratios": ratios(self.http["token_issuance"], ["dot_stock", "dot_fast"]),
            },
            "key_verification": {
                "rows": self.http["key_verification"],
                "ratios": ratios(self.http["key_verification"], ["apikey"]),
            },
            "token_issuance_many": {
                "rows": self.http["token_issuance_many"],
                "ratios": ratios(self.http["token_issuance_many"], ["dot_fast"]),
                "credentials": self.mode.many[1],
            },
            "key_verification_many": {
                "rows": self.http["key_verification_many"],
                "ratios": ratios(self.http["key_verification_many"], ["apikey"]),
                "credentials": self.mode.many[0],
            },
            "in_process": {
                "rows": self.inprocess,
                "ratios": inprocess_ratios(self.inprocess),
            },
            "scale": self.scale,
            "memory": self.memory,
            "failures": failures,
        }
        report["targets"] = check_targets(report)
        return report


def basic(client_id: str, client_secret: str) -> str:
    """Return an RFC 6749 §2.3.1 Basic header value (form-encoded id and secret)."""
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def unavailable_row(reason: str) -> dict:
    return {"status": "unavailable", "reason": reason}


def ratios(rows: dict[str, dict], peers: list[str]) -> dict[str, float | None]:
    """Return Identity Portal's throughput as a multiple of each peer's (None until measurable)."""
    ours = rows.get("portal", {})
    out = {}
    for peer in peers:
        theirs = rows.get(peer, {})
        if ours.get("status") == "ok" and theirs.get("status") == "ok" and theirs["throughput_rps"]:
            out[peer] = round(ours["throughput_rps"] / theirs["throughput_rps"], 2)
        else:
            out[peer] = None
    return out


def inprocess_ratios(rows: dict[str, list[dict]]) -> dict[str, dict | None]:
    """Pair each project-side in-process benchmark with its peer baseline.

    Each ratio comes twice: by throughput (what the targets name) and by median latency
    (peer p50 ÷ our p50), which a busy machine disturbs far less than the mean.
    """
    by_name = {r["name"]: r for side in rows.values() for r in side}

    def ratio(ours: str, theirs: str) -> dict | None:
        a, b = by_name.get(ours, {}), by_name.get(theirs, {})
        if a.get("status") == "ok" and b.get("status") == "ok":
            return {
                "throughput": round(a["ops_per_s"] / b["ops_per_s"], 2),
                "p50": round(b["p50_us"] / a["p50_us"], 2),
            }
        return None

    return {
        "api_key_verify cache hit / drf_api_key.is_valid": ratio(
            "api_key_verify, cache hit", "drf_api_key.is_valid (database path)"
        ),
        "api_key_verify database path / drf_api_key.is_valid": ratio(
            "api_key_verify, database path", "drf_api_key.is_valid (database path)"
        ),
        "tokens.verifier / pyjwt.decode (same token)": ratio(
            "tokens.verifier, cached JWKS", "pyjwt.decode of the same token, pre-loaded key"
        ),
        "tokens.verifier / pyjwt.decode (peer token)": ratio(
            "tokens.verifier, cached JWKS", "pyjwt.decode RS256, pre-loaded key"
        ),
    }


def scale_unavailable(reason: str) -> dict:
    return {"keys": unavailable_row(reason), "inventory": unavailable_row(reason)}


# --- Printing -----------------------------------------------------------------------------------


def fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_http_table(title: str, section: dict, order: list[tuple[str, str]]) -> None:
    print(f"\n== {title}")
    header = (
        f"{'target':<44} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'wrk CPU':>8} {'app ms':>7} {'db ms':>6} {'rows w':>6} {'peak RSS':>9} {'other':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, label in order:
        row = section["rows"].get(name)
        if row is None:
            print(f"{label:<44} (not run)")
        elif row["status"] == "unavailable":
            print(f"{label:<44} {NOT_YET} ({row['reason']})")
        elif "throughput_rps" not in row:
            print(f"{label:<44} ERROR: {row['reason']}")
        else:
            mark = "" if row["status"] == "ok" else f"  ERROR: {row.get('reason')}"
            print(
                f"{label:<44} {row['throughput_rps']:>9.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
                f"{row['p99_ms']:>8.1f} {row['errors']:>6} {row['wrk_cpu_cores']:>6.2f} c "
                f"{row['server_cpu_ms_per_request']:>7.2f} {row['db_cpu_ms_per_request']:>6.2f} "
                f"{row['db_rows_written_per_request']:>6.2f} {row['peak_rss_mb']:>6.1f} MB "
                f"{row['other_load_cores']:>4.2f} c{mark}"
            )
    for name, _label in order:
        row = section["rows"].get(name) or {}
        if len(row.get("rounds_rps", [])) > 1:
            print(f"   rounds, req/s ({name}): " + " / ".join(f"{v:.1f}" for v in row["rounds_rps"]))
        if row.get("other_load_cores", 0) > 0.5:
            print(f"   WARNING ({name}): {row['other_load_cores']:.2f} cores were busy with other work")
    for peer, ratio in section["ratios"].items():
        value = f"{ratio:.2f}x" if ratio is not None else NOT_YET
        print(f"   Identity Portal throughput / {peer}: {value}")


def print_profiles(report: dict) -> None:
    """Print what dominates each HTTP path, when the run was profiled."""
    for bench in HTTP_BENCHMARKS:
        for name, row in report[bench]["rows"].items():
            profile = row.get("profile")
            if not profile or "samples" not in profile:
                continue
            where = f"{profile['samples']} samples, {profile['file']}"
            print(f"\n-- profile of one worker: {bench} / {name} ({where})")
            packages = ", ".join(f"{pkg} {pct}%" for pkg, pct in profile["self_time_by_package_pct"])
            print(f"   self time by package: {packages}")
            for func, pct in profile["self_time_by_function_pct"]:
                print(f"   {pct:>5.1f}%  {func}")


def print_scale(scale: dict) -> None:
    """Print verification latency at the small and the large table size, and the inventory."""
    print("\n== 4. Scale")
    keys = scale.get("keys", {})
    if keys.get("status") == "ok":
        title = "API key verification, database path"
        print(f"{title:<52} {'ops/s':>10} {'p50 µs':>8} {'p95 µs':>8} {'p99 µs':>8}")
        for row in keys["sizes"].values():
            print(
                f"{row['name']:<52} {row['ops_per_s']:>10.0f} {row['p50_us']:>8.1f} {row['p95_us']:>8.1f} "
                f"{row['p99_us']:>8.1f}   (COPY {row['copy_seconds']} s)"
            )
        print(f"   p50 at the large size / p50 at the small size: {keys['p50_ratio_large_to_small']:.2f}x")
    else:
        word = NOT_YET if keys.get("status") == "unavailable" else "ERROR"
        print(f"   API key verification at scale: {word} ({keys.get('reason')})")
    inventory = scale.get("inventory", {})
    if inventory.get("status") == "ok":
        print(
            f"   {inventory['name']}: p50 {inventory['p50_us'] / 1000:.1f} ms, "
            f"p95 {inventory['p95_us'] / 1000:.1f} ms, p99 {inventory['p99_us'] / 1000:.1f} ms "
            "(target: p50 <= 300 ms)"
        )
    else:
        word = NOT_YET if inventory.get("status") == "unavailable" else "ERROR"
        print(f"   inventory first page: {word} ({inventory.get('reason')})")


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\nIdentity Portal benchmarks, {report['date']} ({report['mode']['name']} mode)")
    print(f"machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gb']} GB; {m['wrk']}")
    print(f"config: {report['config']['server']}; portal cache: {report['config']['portal_cache']}")
    print(
        "columns: wrk CPU = cores the load generator itself used; app ms / db ms = CPU per request in\n"
        "  the gunicorn workers / in their PostgreSQL backends; rows w = database rows written per\n"
        "  request; peak RSS = largest worker's VmHWM; other = cores busy with anything else (noise)"
    )
    print_http_table(
        f"1. Token issuance: POST /oauth/token, client_credentials, Basic auth, c={CONCURRENCY}",
        report["token_issuance"],
        [
            ("portal", "Identity Portal"),
            ("dot_stock", "django-oauth-toolkit stock (PBKDF2)"),
            ("dot_fast", "django-oauth-toolkit fast hasher (SHA-256)"),
        ],
    )
    print_http_table(
        f"2. API key verification: GET /api/v1/whoami, c={CONCURRENCY}",
        report["key_verification"],
        [("portal", "Identity Portal (Bearer key)"), ("apikey", "djangorestframework-api-key HasAPIKey")],
    )
    many = report.get("token_issuance_many", {})
    print_http_table(
        f"1b. Token issuance, {many.get('credentials', 0):,} applications round-robin, c={CONCURRENCY}",
        many or {"rows": {}, "ratios": {}},
        [("portal", "Identity Portal"), ("dot_fast", "django-oauth-toolkit fast hasher (SHA-256)")],
    )
    many = report.get("key_verification_many", {})
    print_http_table(
        f"2b. API key verification, {many.get('credentials', 0):,} keys round-robin, c={CONCURRENCY}",
        many or {"rows": {}, "ratios": {}},
        [("portal", "Identity Portal (Bearer key)"), ("apikey", "djangorestframework-api-key HasAPIKey")],
    )
    print("\n== 3. In-process verification")
    print(f"{'call':<52} {'ops/s':>10} {'p50 µs':>8} {'p95 µs':>8} {'p99 µs':>8} {'queries':>7}")
    for side in ("portal", "peer"):
        for row in report["in_process"]["rows"][side]:
            if row["status"] != "ok":
                word = NOT_YET if row["status"] == "unavailable" else "ERROR"
                print(f"{row['name']:<52} {word} ({row['reason']})")
                continue
            print(
                f"{row['name']:<52} {row['ops_per_s']:>10.0f} {row['p50_us']:>8.1f} {row['p95_us']:>8.1f} "
                f"{row['p99_us']:>8.1f} {fmt(row.get('queries_per_call'), 'd'):>7}"
            )
    for name, ratio in report["in_process"]["ratios"].items():
        if ratio is None:
            print(f"   {name}: {NOT_YET}")
        else:
            print(f"   {name}: {ratio['throughput']:.2f}x by throughput, {ratio['p50']:.2f}x by p50")
    print_profiles(report)
    print_scale(report["scale"])
    print("\n== 5. Memory after load (largest worker)")
    for name, mem in report["memory"].items():
        print(f"   {name:<36} current {mem['rss_mb']:>6.1f} MB   peak {mem['peak_rss_mb']:>6.1f} MB")
    print_targets(report["targets"])


def check_targets(report: dict) -> list[dict]:
    """Compare the run with issue 16's targets; a miss is reported, never a failure (shared machines)."""
    checks: list[dict] = []

    def check(
        name: str, value: float | None, target: float, unit: str = "x", *, at_most: bool = False
    ) -> None:
        met = None if value is None else value <= target if at_most else value >= target
        checks.append(
            {"name": name, "value": value, "target": target, "unit": unit, "met": met, "at_most": at_most}
        )

    def ratio(section: str, peer: str) -> float | None:
        return report[section]["ratios"].get(peer)

    check("token issuance / DOT stock", ratio("token_issuance", "dot_stock"), 50.0)
    check("token issuance / DOT fast hasher", ratio("token_issuance", "dot_fast"), 1.5)
    portal_token = report["token_issuance"]["rows"].get("portal", {})
    check("token issuance p99", portal_token.get("p99_ms"), 40.0, " ms", at_most=True)
    check("key verification / HasAPIKey", ratio("key_verification", "apikey"), 1.5)
    check(
        "token issuance, many applications / DOT fast hasher", ratio("token_issuance_many", "dot_fast"), 1.3
    )
    check("key verification, many keys / HasAPIKey", ratio("key_verification_many", "apikey"), 1.3)
    rows = {r["name"]: r for side in report["in_process"]["rows"].values() for r in side}
    hit = rows.get("api_key_verify, cache hit", {})
    check(
        "api_key_verify cache hit, ops/s",
        hit.get("ops_per_s") if hit.get("status") == "ok" else None,
        100_000,
        "/s",
    )
    check(
        "api_key_verify cache hit, p50",
        hit.get("p50_us") if hit.get("status") == "ok" else None,
        10.0,
        " µs",
        at_most=True,
    )
    verifier = report["in_process"]["ratios"].get("tokens.verifier / pyjwt.decode (same token)")
    check("tokens.verifier / PyJWT by p50", verifier["p50"] if verifier else None, 0.95)
    portal_memory = [m["peak_rss_mb"] for name, m in report["memory"].items() if name.startswith("portal")]
    check(
        "peak RSS per portal worker",
        max(portal_memory) if portal_memory else None,
        120.0,
        " MB",
        at_most=True,
    )
    return checks


def print_targets(checks: list[dict]) -> None:
    """Print each target with its measurement, and a WARNING line for each one missed."""
    print("\n== 6. Targets (issue 16); timing never fails the run, a miss prints WARNING")
    for c in checks:
        sign = "<=" if c.get("at_most") else ">="
        target = f"{sign} {c['target']:g}{c['unit']}"
        if c["met"] is None:
            print(f"   {c['name']:<56} {NOT_YET:>12}   (target {target})")
            continue
        value = f"{c['value']:,.2f}{c['unit']}"
        print(f"   {c['name']:<56} {value:>12}   target {target}   {'met' if c['met'] else 'MISSED'}")
    for c in checks:
        if c["met"] is False:
            print(
                f"WARNING: {c['name']} is {c['value']:,.2f}{c['unit']}, short of its target "
                f"({'<=' if c.get('at_most') else '>='} {c['target']:g}{c['unit']})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every benchmark for a few seconds")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server URL without a database name (env BENCH_PG_URL)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--no-redis", action="store_true", help="portal caches per process")
    parser.add_argument("--only", type=lambda s: set(s.split(",")), help="portal,dot_stock,dot_fast,apikey")
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--profile", action="store_true", help="sample one worker per benchmark with py-spy")
    args = parser.parse_args()
    ensure_wrk()
    sys.exit(Suite(args).run())


if __name__ == "__main__":
    main()
