"""Profile the hot paths in one process: CPU per call, cProfile, or instructions under callgrind.

    python bench/hotpaths.py setup                        # fresh bench_hotpaths database + credentials
    python bench/hotpaths.py run token -n 500             # CPU per call through the WSGI handler
    python bench/hotpaths.py run whoami -n 500 --cprofile /tmp/whoami.prof
    valgrind --tool=callgrind python bench/hotpaths.py run token -n 0     # then -n 200: the
                                                          # difference is 200 calls' instructions

Paths: ``token`` (POST /oauth/token, Basic), ``whoami`` (GET /api/v1/whoami, Bearer key), both
through Django's WSGI handler with every middleware layer, as gunicorn calls it; ``key_verify``
(``api_key_verify`` on a cache hit) and ``verifier`` (``tokens.verifier`` on a portal token).
The portal runs as under ``make bench`` (DEBUG off, PostgreSQL, Redis unless ``--no-redis``).

On a shared machine wall-clock figures swing; CPU time per call (``time.process_time``) is
steadier and callgrind's instruction counts do not depend on the neighbours at all, which is
how docs/performance.md compares before and after.
"""

from __future__ import annotations

import argparse
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

#: The throwaway database's environment and credentials (mode 0600; results are not committed).
STATE = RESULTS / "hotpaths-state.json"
DATABASE = "bench_hotpaths"


def setup(args: argparse.Namespace) -> None:
    """Create the database, migrate, seed, and create one API key and one M2M application."""
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
    STATE.touch(mode=0o600)
    client = [app["client_id"], app["client_secret"]]
    STATE.write_text(json.dumps({"env": env, "api_key": key, "client": client}))
    print(f"ready: {STATE}")


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


def calls(path: str, state: dict):
    """Return a no-argument call for the hot path ``path`` (the portal must be set up)."""
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    if path in ("token", "whoami"):
        if path == "token":
            auth = basic(*state["client"])

            def call():
                return wsgi_call(
                    app,
                    method="POST",
                    path="/oauth/token",
                    headers={"Authorization": auth},
                    body=b"grant_type=client_credentials",
                )

        else:
            auth = f"Bearer {state['api_key']}"

            def call():
                return wsgi_call(app, method="GET", path="/api/v1/whoami", headers={"Authorization": auth})

        return call, 200
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
    state = json.loads(STATE.read_text())
    env = dict(state["env"])
    if args.no_redis:
        env.pop("REDIS_URL", None)
    if args.no_metering:
        env["PORTAL_USAGE_METERING"] = "0"
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    call, expect = calls(args.path, state)
    for _ in range(args.warmup):
        answer = call()
        if expect is not None and answer[0] != expect:
            raise SystemExit(f"{args.path} answered {answer[0]}, not {expect}: {answer[1][:200]!r}")
    profiler = cProfile.Profile() if args.cprofile else None
    started_cpu, started = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(args.n):
        call()
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    if args.n:
        print(
            f"{args.path}: {args.n} calls, CPU {cpu / args.n * 1e6:.1f} µs/call, "
            f"wall {wall / args.n * 1e6:.1f} µs/call"
        )
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
    make.add_argument("--database", default=DATABASE, help="the database to recreate (one per session)")
    go = sub.add_parser("run")
    go.add_argument("path", choices=["token", "whoami", "key_verify", "verifier"])
    go.add_argument("-n", type=int, default=500, help="measured calls")
    go.add_argument("--warmup", type=int, default=50)
    go.add_argument("--cprofile", help="write cProfile stats here and print the top functions")
    go.add_argument("--top", type=int, default=30)
    go.add_argument("--no-redis", action="store_true", help="per-process cache (LocMem)")
    go.add_argument("--no-metering", action="store_true", help="PORTAL_USAGE_METERING=0")
    args = parser.parse_args()
    setup(args) if args.command == "setup" else run(args)


if __name__ == "__main__":
    main()
