"""Create many real credentials in the portal's bench database for the many-credential rows.

    python bench/many.py --keys 10000 --apps 1000 --out-dir DIR   (run by bench/run.py)

Runs in the portal's environment (the bench database, DEBUG off) and calls the same services
the pinned commands `create_api_key` and `create_m2m_app` call (`api_key_create`,
`m2m_app_create`), in batches inside one transaction each so the run stays short. Writes one
`Authorization` header value per line, never printed: `DIR/portal-keys.txt` (`Bearer <key>`)
and `DIR/portal-apps.txt` (`Basic <client id:secret>`). Prints one JSON object with the counts
and the seconds each took (the last line of its output).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500


def basic(client_id: str, client_secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def in_batches(count: int, create: Callable[[int], str], out: Path, atomic: Callable) -> float:
    """Create `count` credentials, BATCH per transaction; write their header values to `out`.

    Return the seconds it took.
    """
    started = time.monotonic()
    lines = []
    for first in range(0, count, BATCH):
        with atomic():
            lines.extend(create(n) for n in range(first, min(count, first + BATCH)))
    out.write_text("\n".join(lines) + "\n")
    return round(time.monotonic() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--apps", type=int, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.db import transaction

    from credentials.api_keys.services import api_key_create
    from portal.models import Organization, User
    from tokens.clients.services import m2m_app_create

    organization = Organization.objects.get(slug="acme")
    owner = User.objects.get(email__iexact="owner@acme.example")
    args.out_dir.mkdir(parents=True, exist_ok=True)

    # What every credential of the run shares; each gets its own name.
    common = {"organization": organization, "owner": owner, "actor": None, "scopes": ["orders:read"]}

    def create_key(n: int) -> str:
        _key, plaintext = api_key_create(name=f"bench-many-{n}", via="cli", **common)
        return f"Bearer {plaintext}"

    def create_app(n: int) -> str:
        application, secret = m2m_app_create(name=f"bench-many-{n}", **common)
        return basic(application.client_id, secret)

    timings = {
        "keys_seconds": in_batches(
            args.keys, create_key, args.out_dir / "portal-keys.txt", transaction.atomic
        ),
        "apps_seconds": in_batches(
            args.apps, create_app, args.out_dir / "portal-apps.txt", transaction.atomic
        ),
    }
    print(json.dumps({"keys": args.keys, "apps": args.apps, **timings}))


if __name__ == "__main__":
    main()
