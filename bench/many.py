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
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500


def basic(client_id: str, client_secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


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
    timings = {}

    started = time.monotonic()
    lines: list[str] = []
    for first in range(0, args.keys, BATCH):
        with transaction.atomic():
            for n in range(first, min(args.keys, first + BATCH)):
                _key, plaintext = api_key_create(
                    organization=organization,
                    name=f"bench-many-{n}",
                    owner=owner,
                    scopes=["orders:read"],
                    actor=None,
                    via="cli",
                )
                lines.append(f"Bearer {plaintext}")
    (args.out_dir / "portal-keys.txt").write_text("\n".join(lines) + "\n")
    timings["keys_seconds"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    lines = []
    for first in range(0, args.apps, BATCH):
        with transaction.atomic():
            for n in range(first, min(args.apps, first + BATCH)):
                application, secret = m2m_app_create(
                    organization=organization,
                    name=f"bench-many-{n}",
                    owner=owner,
                    actor=None,
                    scopes=["orders:read"],
                )
                lines.append(basic(application.client_id, secret))
    (args.out_dir / "portal-apps.txt").write_text("\n".join(lines) + "\n")
    timings["apps_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps({"keys": args.keys, "apps": args.apps, **timings}))


if __name__ == "__main__":
    main()
