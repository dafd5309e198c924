"""Scale benchmark: API key verification with 10,000 and with 1,000,000 keys (run by bench/run.py).

    python bench/scale.py --small 10000 --large 1000000 --seconds 4

Runs against the portal's benchmark database with the server's environment. Real keys to
verify come from the pinned ``create_api_key`` command; the other rows are bulk-loaded with
PostgreSQL COPY as copies of a real row with fresh random key ids and random digests (nobody
verifies them, but they fill the same unique index the lookup uses). Verification is timed on
the database path (Django's cache swapped for DummyCache), round-robin over the real keys.

Between the two sizes, with `--inventory` credentials in the organisation (100,000 by
default, capped at `--large`), the inventory's first page `/orgs/acme/inventory/` is
rendered in-process through Django's test client as the signed-in owner (the whole view:
UNION query, flags, template), timed like the rest.

Prints one line ``BENCH_JSON {…}``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL_KEYS = 20
ALPHABET = string.digits + string.ascii_letters


def unavailable(reason: str) -> dict:
    return {"status": "unavailable", "reason": reason}


def create_real_keys() -> list[str]:
    """Create keys through the pinned command and return their plaintexts."""
    from django.core.management import call_command

    plaintexts = []
    for i in range(REAL_KEYS):
        out = io.StringIO()
        call_command(
            "create_api_key",
            "--org", "acme",
            "--name", f"bench-scale-{i}",
            "--owner", "owner@acme.example",
            "--json",
            stdout=out,
        )  # fmt: skip
        line = next(ln for ln in reversed(out.getvalue().splitlines()) if ln.startswith("{"))
        plaintexts.append(json.loads(line)["key"])
    return plaintexts


def bulk_load(model, count: int, *, seen: set[str]) -> float:
    """COPY ``count`` filler rows shaped like the newest real row; return the seconds it took."""
    from django.db import connection

    template = model.objects.order_by("-pk").first()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    base = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
    index = {f.attname: i for i, f in enumerate(fields)}
    id_length = model._meta.get_field("key_id").max_length
    rng = random.Random(os.getpid())  # noqa: S311 (filler ids, not secrets)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for i in range(count):
                key_id = "".join(rng.choices(ALPHABET, k=id_length))
                while key_id in seen:
                    key_id = "".join(rng.choices(ALPHABET, k=id_length))
                seen.add(key_id)
                row = list(base)
                row[index["key_id"]] = key_id
                if "lineage" in index:  # API keys: each filler starts its own rotation chain
                    row[index["lineage"]] = key_id
                row[index["digest"]] = rng.randbytes(32).hex()
                row[index["name"]] = f"bench-filler-{len(seen)}-{i}"
                copy.write_row(row)
        cursor.execute(f"ANALYZE {model._meta.db_table}")
    return time.perf_counter() - started


def measure_inventory(credentials: int, seconds: float) -> dict:
    """Time the inventory's first page as the demo owner; return the measured row."""
    from django.test import Client
    from inprocess import measure

    from portal.models import User

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(email="owner@acme.example"))

    def first_page():
        response = client.get("/orgs/acme/inventory/", secure=True)
        if response.status_code != 200 or b"Credential inventory" not in response.content:
            raise RuntimeError(f"inventory answered {response.status_code}")
        return True

    first_page()
    row = measure(f"inventory first page, {credentials:,} credentials", first_page, seconds=seconds)
    row["credentials"] = credentials
    return {"status": "ok", **row}


def run(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    import django

    django.setup()
    from inprocess import _cache_disabled, _call_with_key, measure

    try:
        from credentials.api_keys.models import ApiKey
        from credentials.api_keys.verification import api_key_verify
    except ImportError:
        return {"keys": unavailable("credentials.ApiKey / api_key_verify not available yet")}
    from django.core.management.base import CommandError

    try:
        plaintexts = create_real_keys()
    except CommandError as exc:
        return {"keys": unavailable(f"create_api_key not available yet ({exc})")}
    calls = [_call_with_key(api_key_verify, key) for key in plaintexts]
    for call in calls:
        result = call()
        if not getattr(result, "valid", result):
            return {"keys": {"status": "error", "reason": "api_key_verify rejected a fresh key"}}

    turn = iter(range(10**12))

    def round_robin():
        return calls[next(turn) % len(calls)]()

    seen = set(ApiKey.objects.values_list("key_id", flat=True))
    sizes = {}
    inventory: dict = unavailable("not measured")
    with _cache_disabled():
        for size in (args.small, args.large):
            if size == args.large:
                target = min(args.inventory, args.large)
                missing = target - ApiKey.objects.count()
                if missing > 0:
                    bulk_load(ApiKey, missing, seen=seen)
                try:
                    inventory = measure_inventory(_credential_count(), args.seconds)
                except Exception as exc:  # noqa: BLE001  reported, not fatal to the other figures
                    inventory = {"status": "error", "reason": str(exc)[:200]}
            missing = size - ApiKey.objects.count()
            load_seconds = bulk_load(ApiKey, missing, seen=seen) if missing > 0 else 0.0
            row = measure(f"api_key_verify, database path, {size:,} keys", round_robin, seconds=args.seconds)
            row["keys"] = ApiKey.objects.count()
            row["copy_seconds"] = round(load_seconds, 1)
            sizes[str(size)] = row
    small, large = sizes[str(args.small)], sizes[str(args.large)]
    return {
        "keys": {
            "status": "ok",
            "sizes": sizes,
            "p50_ratio_large_to_small": round(large["p50_us"] / small["p50_us"], 2),
        },
        "inventory": inventory,
    }


def _credential_count() -> int:
    from credentials.api_keys.models import ApiKey
    from tokens.models import M2MApplication

    return (
        ApiKey.objects.filter(organization__slug="acme").count()
        + M2MApplication.objects.filter(organization__slug="acme").count()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--inventory", type=int, default=100_000)
    args = parser.parse_args()
    result = run(args)
    result.setdefault("inventory", unavailable("the key benchmark did not run"))
    print("BENCH_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
