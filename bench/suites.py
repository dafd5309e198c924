"""What is measured: the portal and its peers, set up, served and measured side by side (issue 16)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import secrets
import subprocess
import sys
from pathlib import Path

from harness import (
    BENCH,
    CONCURRENCY,
    CORES,
    HTTP_BENCHMARKS,
    PEERS,
    PY,
    RESULTS,
    ROOT,
    UNMETERED,
    BenchError,
    HttpCase,
    Mode,
    Planned,
    Postgres,
    Server,
    Target,
    Unavailable,
    base_env,
    basic,
    json_from,
    log,
    machine,
    run_http_case,
    unknown_command,
)
from report import (
    check_targets,
    inprocess_ratios,
    print_report,
    ratios,
    scale_unavailable,
    unavailable_row,
)

FULL = Mode(
    "full", duration=10, warmup=2, inprocess=3.0, rounds=3, scale=(10_000, 1_000_000), many=(10_000, 1_000)
)
SMOKE = Mode("smoke", duration=3, warmup=1, inprocess=0.5, rounds=1, scale=(1_000, 20_000), many=(1_000, 100))


def portal_env(*, database_url: str, redis_url: str = "") -> dict[str, str]:
    """Return the portal's production-like environment (DEBUG off) for one benchmark run.

    Secrets are fresh and strong for each run, never printed.
    """
    from cryptography.fernet import Fernet  # the portal's dependency, not the harness's

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
        DATABASE_URL=database_url,
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


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

    def portal_target(self) -> Target:
        database = f"{getattr(self.args, 'database_prefix', 'bench_')}portal"
        env = portal_env(database_url=self.pg.recreate(database), redis_url=self.redis_url)
        self.databases.append(database)
        return Target("portal", "Identity Portal", database, ROOT, "portal.wsgi:application", env)

    def peer_target(self, variant: str, label: str) -> Target:
        database = f"{getattr(self.args, 'database_prefix', 'bench_')}peer_{variant}"
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

    def settle_cache(self) -> None:
        """Empty the portal's cache once every target is set up, before the first measured round.

        Creating the credentials wrote into it what follows a change, not the steady state: a
        freshly created application's client snapshot is a tombstone for 30 s
        (`tokens.clients.snapshot.TOMBSTONE_SECONDS`), during which its token requests read
        PostgreSQL, so a short (smoke) run would measure the first 30 s after a change.
        """
        if self.redis_url:
            import redis

            redis.Redis.from_url(self.redis_url, socket_connect_timeout=0.5).flushdb()

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

        key = self.created(target, "create_api_key", "key_verification", owner)
        api_key = key["key"] if key else ""
        app = self.created(target, "create_m2m_app", "token_issuance", owner)
        client_auth = basic(app["client_id"], app["client_secret"]) if app else ""

        # The same build with usage metering off, on the same database and credentials: issue 18's
        # budget (metering costs at most 5 %) is read from these rows side by side.
        unmetered = dataclasses.replace(
            target,
            name=UNMETERED,
            label="Identity Portal, metering off",
            env={**target.env, "PORTAL_USAGE_METERING": "0"},
        )
        for served, suffix in ((target, ""), (unmetered, ", metering off")):
            if api_key:
                case = HttpCase("key_verification", "/api/v1/whoami", f"Bearer {api_key}")
                self.planned.append(Planned(served, case, f"portal (whoami{suffix})"))
            if client_auth:
                case = HttpCase(
                    "token_issuance", "/oauth/token", client_auth, form="grant_type=client_credentials"
                )
                self.planned.append(Planned(served, case, f"portal (token{suffix})"))
        self.later.append(lambda: self.run_portal_inprocess(target, api_key=api_key, client_auth=client_auth))
        if api_key and client_auth:
            self.plan_portal_many(target)

    def created(self, target: Target, command: str, benchmark: str, owner: list[str]) -> dict | None:
        """Create one portal credential with a pinned command; None (row unavailable) if it is missing."""
        proc = target.manage(command, *owner, "--name", "bench-http", "--json", check=False)
        if unknown_command(proc):
            self.http[benchmark]["portal"] = unavailable_row(f"manage.py {command} not found")
            return None
        if proc.returncode != 0:
            raise BenchError(f"portal: {command} failed: {proc.stderr.strip()[-300:]}")
        return json_from(proc.stdout)

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
            rows = getattr(self.args, "rows", None)
            if rows:
                self.planned = [p for p in self.planned if p.case.benchmark in rows]
                self.later = []
            self.settle_cache()
            # Interleave targets round by round so that a burst of foreign load hits all alike.
            for round_no in range(1, self.mode.rounds + 1):
                for planned in self.planned:
                    self.guarded(lambda p=planned, r=round_no: self.serve_case(p, r), failures)
            for step in self.later:
                self.guarded(step, failures)
            if self.portal and not rows:
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
                "ratios": ratios(self.http["token_issuance"], ["dot_stock", "dot_fast", UNMETERED]),
            },
            "key_verification": {
                "rows": self.http["key_verification"],
                "ratios": ratios(self.http["key_verification"], ["apikey", UNMETERED]),
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
