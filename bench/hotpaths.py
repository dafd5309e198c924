"""Profile the hot paths in one process: CPU per call, cProfile, or instructions under callgrind.

    python bench/hotpaths.py setup                        # fresh bench_hotpaths database + credentials
                                                          # (--database bench_NAME on a shared machine)
    python bench/hotpaths.py run token -n 500             # CPU per call through the WSGI handler
    python bench/hotpaths.py run whoami -n 500 --cprofile /tmp/whoami.prof
    valgrind --tool=callgrind python bench/hotpaths.py run token -n 0     # then -n 200: the
                                                          # difference is 200 calls' instructions
    python bench/hotpaths.py setup --keys 2000 --apps 1000 --database bench_hotpaths_many
    python bench/hotpaths.py run whoami_many -n 500 --flush-every 250 --count --database bench_hotpaths_many

Paths: ``token`` (POST /oauth/token, Basic), ``whoami`` (GET /api/v1/whoami, Bearer key), both
through Django's WSGI handler with every middleware layer, as gunicorn calls it; ``key_verify``
(``api_key_verify`` on a cache hit) and ``verifier`` (``tokens.verifier`` on a portal token).
The portal runs as under ``make bench`` (DEBUG off, PostgreSQL, Redis unless ``--no-redis``).

Many credentials (issue 16's rows 1b and 2b): ``setup --keys N --apps M`` also creates N keys
and M applications (``bench/many.py``); ``whoami_many`` and ``token_many`` present them in
order, one per call, after clearing the cache and every ``last_used_at``, so each call is the
first use of its credential: the cache-miss, cache-fill and last-used path the round-robin
rows pay (warm-up calls use the first credentials, measured calls the next ones). The
periodic work a server does every ``PORTAL_USAGE_FLUSH_SECONDS`` is made deterministic with
``--flush-every K``: the interval is set out of reach and the flush runs after every K calls,
so its cost is spread over K requests as on a server serving K requests per interval.
``--count`` prints SQL statements, database writes and cache round trips per measured call.

On a shared machine wall-clock figures swing; CPU time per call (``time.process_time``) is
steadier and callgrind's instruction counts do not depend on the neighbours at all, which is
how docs/performance.md compares before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time

from harness import PY, RESULTS, ROOT, Postgres, basic, json_from
from suites import portal_env

DATABASE = "bench_hotpaths"


def state_path(database: str):
    """Return the throwaway database's environment and credentials file (mode 0600; not committed)."""
    return RESULTS / ("hotpaths-state.json" if database == DATABASE else f"hotpaths-state-{database}.json")


def setup(args: argparse.Namespace) -> None:
    """Create the database, migrate, seed, and create one API key and one M2M application (or many)."""
    env = portal_env(database_url=Postgres(args.pg_url).recreate(args.database), redis_url=args.redis_url)

    def manage(*argv: str) -> str:
        proc = subprocess.run(
            [PY, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"manage.py {argv[0]} failed: {proc.stderr[-500:]}")
        return proc.stdout

    manage("migrate", "--noinput", "-v0")
    manage("seed_demo", "--force")
    manage("rotate_signing_key")
    owner = ["--org", "acme", "--owner", "owner@acme.example", "--scopes", "orders:read", "--json"]
    key = json_from(manage("create_api_key", *owner, "--name", "hotpaths"))["key"]
    app = json_from(manage("create_m2m_app", *owner, "--name", "hotpaths"))
    RESULTS.mkdir(exist_ok=True)
    state = {"env": env, "api_key": key, "client": [app["client_id"], app["client_secret"]]}
    if args.keys or args.apps:
        out_dir = RESULTS / f"hotpaths-{args.database}"
        out_dir.mkdir(mode=0o700, exist_ok=True)
        proc = subprocess.run(
            [PY, "bench/many.py", "--keys", str(args.keys), "--apps", str(args.apps)]
            + ["--out-dir", str(out_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"bench/many.py failed: {proc.stderr[-500:]}")
        state["many"] = {
            "whoami_many": str(out_dir / "portal-keys.txt"),
            "token_many": str(out_dir / "portal-apps.txt"),
        }
    path = state_path(args.database)
    path.touch(mode=0o600)
    path.write_text(json.dumps(state))
    print(f"ready: {path}")


def wsgi_call(
    app, *, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """Call the WSGI application once, as gunicorn would; return the status code and the body."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    status = []
    result = app(environ, lambda s, h, exc_info=None: status.append(s))
    content = b"".join(result)
    result.close()  # request_finished: what gunicorn does after each response
    return int(status[0].split(" ", 1)[0]), content


def issue_token(app, state: dict) -> tuple[int, str]:
    """Return the status and access token of one POST /oauth/token."""
    status, body = wsgi_call(
        app,
        method="POST",
        path="/oauth/token",
        headers={"Authorization": basic(*state["client"])},
        body=b"grant_type=client_credentials",
    )
    return status, json.loads(body).get("access_token", "") if status == 200 else ""


def many_calls(app, path: str, state: dict, *, skip: int = 0, reset: bool = True):
    """Return a call presenting the next of the many credentials each time (see the module docstring)."""
    from django.core.cache import cache

    from credentials.api_keys.models import ApiKey
    from tokens.models import ClientSecret

    if path not in state.get("many", {}):
        raise SystemExit("no many credentials: run setup with --keys/--apps")
    with open(state["many"][path]) as lines:
        headers = [line.strip() for line in lines if line.strip()][skip:]
    if reset:
        # Every call the first use of its credential: nothing cached, nothing recorded yet.
        ApiKey.objects.update(last_used_at=None, last_used_ip=None)
        ClientSecret.objects.update(last_used_at=None)
        cache.clear()
    presented = iter(headers)

    def call():
        try:
            auth = next(presented)
        except StopIteration:
            raise SystemExit(f"only {len(headers)} credentials: lower -n/--warmup") from None
        return machine_request(app, "token" if path == "token_many" else "whoami", auth)

    return call, 200


def machine_request(app, path: str, auth: str):
    """One token request (client_credentials) or one whoami through the WSGI handler."""
    if path == "token":
        return wsgi_call(
            app,
            method="POST",
            path="/oauth/token",
            headers={"Authorization": auth},
            body=b"grant_type=client_credentials",
        )
    return wsgi_call(app, method="GET", path="/api/v1/whoami", headers={"Authorization": auth})


def periodic_flushes() -> list:
    """Return what a server runs every flush interval (usage metering; batched last-used writes)."""
    import importlib

    flushes = []
    for module, name in (("credentials.usage", "flush"), ("credentials.last_used", "flush")):
        with contextlib.suppress(ImportError, AttributeError):  # not on every commit measured
            flushes.append(getattr(importlib.import_module(module), name))
    return flushes


class Counters:
    """Count SQL statements (and writes among them) and cache round trips (and commands)."""

    def __init__(self) -> None:
        self.sql = self.writes = self.round_trips = self.commands = 0

    def __enter__(self) -> Counters:
        from django.db import connection
        from redis.client import Pipeline, Redis
        from redis.connection import AbstractConnection

        counters = self

        def count_sql(execute, sql, params, many, context):
            counters.sql += 1
            if sql.lstrip()[:6].upper() in ("UPDATE", "INSERT", "DELETE"):
                counters.writes += 1
            return execute(sql, params, many, context)

        self._wrapper = connection.execute_wrapper(count_sql)
        self._wrapper.__enter__()
        self._saved = [
            (AbstractConnection, "send_packed_command", AbstractConnection.send_packed_command),
            (Redis, "execute_command", Redis.execute_command),
            (Pipeline, "execute", Pipeline.execute),
        ]
        send, execute, pipeline_execute = (saved for _cls, _name, saved in self._saved)

        def send_packed_command(conn, command, check_health=True):
            counters.round_trips += 1
            return send(conn, command, check_health)

        def execute_command(client, *args, **options):
            if not isinstance(client, Pipeline):
                counters.commands += 1
            return execute(client, *args, **options)

        def execute_pipeline(pipe, raise_on_error=True):
            counters.commands += len(pipe.command_stack)
            return pipeline_execute(pipe, raise_on_error)

        AbstractConnection.send_packed_command = send_packed_command
        Redis.execute_command = execute_command
        Pipeline.execute = execute_pipeline
        return self

    def __exit__(self, *exc) -> None:
        self._wrapper.__exit__(*exc)
        for cls, name, saved in self._saved:
            setattr(cls, name, saved)

    def report(self, n: int) -> str:
        return (
            f"per call: {self.sql / n:.3f} SQL statements ({self.writes / n:.3f} writes), "
            f"{self.round_trips / n:.3f} cache round trips ({self.commands / n:.3f} commands)"
        )


def calls(path: str, state: dict, args: argparse.Namespace):
    """Return a no-argument call for the hot path ``path`` (the portal must be set up)."""
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    if path in ("whoami_many", "token_many"):
        return many_calls(app, path, state, skip=args.skip, reset=not args.no_reset)
    if path in ("token", "whoami"):
        auth = basic(*state["client"]) if path == "token" else f"Bearer {state['api_key']}"
        return (lambda: machine_request(app, path, auth)), 200
    if path == "key_verify":
        from credentials.api_keys.verification import api_key_verify

        key = state["api_key"]
        return (lambda: api_key_verify(key)), None
    if path == "verifier":
        from django.conf import settings

        from tokens.signing.keys import local_public_key
        from tokens.verifier import TokenVerifier

        status, token = issue_token(app, state)
        if status != 200:
            raise SystemExit(f"/oauth/token answered {status}")
        verifier = TokenVerifier(
            issuer=settings.PORTAL_ISSUER,
            audience=settings.PORTAL_DEFAULT_AUDIENCE,
            key_resolver=local_public_key,
        )
        return (lambda: verifier.verify(token)), None
    raise SystemExit(f"unknown path {path!r}")


def run(args: argparse.Namespace) -> None:
    state = json.loads(state_path(args.database).read_text())
    env = dict(state["env"])
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    if args.no_redis:
        env.pop("REDIS_URL", None)
    if args.no_metering:
        env["PORTAL_USAGE_METERING"] = "0"
    if args.flush_every:
        env["PORTAL_USAGE_FLUSH_SECONDS"] = env["PORTAL_LAST_USED_FLUSH_SECONDS"] = "1e9"
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    call, expect = calls(args.path, state, args)
    for _ in range(args.warmup):
        answer = call()
        if expect is not None and answer[0] != expect:
            raise SystemExit(f"{args.path} answered {answer[0]}, not {expect}: {answer[1][:200]!r}")
    flushes = periodic_flushes() if args.flush_every else []
    for flush in flushes:
        flush()  # what the warm-up left: not part of the measured calls
    counters = Counters() if args.count else None
    profiler = cProfile.Profile() if args.cprofile else None
    if counters:
        counters.__enter__()
    started_cpu, started = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for done in range(1, args.n + 1):
        answer = call()
        if expect is not None and answer[0] != expect:
            raise SystemExit(f"{args.path} answered {answer[0]}, not {expect}: {answer[1][:200]!r}")
        if flushes and done % args.flush_every == 0:
            for flush in flushes:
                flush()
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    if counters:
        counters.__exit__(None, None, None)
    if args.n:
        print(
            f"{args.path}: {args.n} calls, CPU {cpu / args.n * 1e6:.1f} µs/call, "
            f"wall {wall / args.n * 1e6:.1f} µs/call"
        )
        if counters:
            print(f"{args.path}: {counters.report(args.n)}")
    if profiler:
        profiler.dump_stats(args.cprofile)
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("setup")
    make.add_argument(
        "--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
    )
    make.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    make.add_argument("--keys", type=int, default=0, help="also create this many API keys (whoami_many)")
    make.add_argument("--apps", type=int, default=0, help="also create this many applications (token_many)")
    go = sub.add_parser("run")
    paths = ["token", "whoami", "key_verify", "verifier", "whoami_many", "token_many"]
    go.add_argument("path", choices=paths)
    go.add_argument("--redis-url", help="instead of the one given to setup")
    go.add_argument("--flush-every", type=int, default=0, help="run the periodic flushes after every K calls")
    go.add_argument("--count", action="store_true", help="SQL statements, writes, cache round trips per call")
    go.add_argument("--skip", type=int, default=0, help="many: start at this credential")
    go.add_argument("--no-reset", action="store_true", help="many: keep cache and last_used_at")
    go.add_argument("-n", type=int, default=500, help="measured calls")
    go.add_argument("--warmup", type=int, default=50)
    go.add_argument("--cprofile", help="write cProfile stats here and print the top functions")
    go.add_argument("--top", type=int, default=30)
    go.add_argument("--no-redis", action="store_true", help="per-process cache (LocMem)")
    go.add_argument("--no-metering", action="store_true", help="PORTAL_USAGE_METERING=0")
    for command in (make, go):
        command.add_argument("--database", default=DATABASE, help="bench_… database (and its state file)")
    args = parser.parse_args()
    setup(args) if args.command == "setup" else run(args)


if __name__ == "__main__":
    main()
