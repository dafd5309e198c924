"""The secret-leak sweep: every flow that creates or uses a secret, then a search everywhere.

API keys (dashboard, REST API, CLI: create, use, rotate, revoke), client secrets (dashboard,
CLI: create, rotate, use at the token, introspection and revocation endpoints), access tokens,
token exchange (API keys traded for JWTs), private_key_jwt (the service's private key and its
client assertions: token, replay, introspection, revocation), workload identity federation (a
platform's tokens: token, replay, the "test a token" page), signing keys (rotate), invitation
tokens (invite, accept), leak reports (GitHub secret scanning reports a key and a client secret,
twice) and webhook signing secrets (create, rotate, deliver, retry) run with logging at DEBUG and
every SQL statement logged. Then every captured log line, every response body (except the one that
reveals each secret), the cache and every row of every table are searched for every secret issued.
The per-room tests (tests/credentials/api_keys/test_no_leaks.py, tests/tokens/test_leaks.py) go deeper into
each room; this is the one place that covers them all together.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from jwt.algorithms import ECAlgorithm

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create
from credentials.models import LeakReport
from credentials.webhooks.models import WebhookEndpoint
from portal.models import Invitation
from tests.credentials.webhooks.conftest import Receiver
from tests.factories import ScopeFactory, UserFactory
from tests.support.oidc_issuer import LocalIssuer
from tests.support.secret_scanning import keys_document, sign
from tests.tokens.conftest import basic
from tests.tokens.test_leaks import _private_material
from tokens.clients.services import m2m_app_create, m2m_app_set_exchange
from tokens.federation.services import federated_identity_create
from tokens.models import M2MApplication
from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

API_KEY_RE = re.compile(r"ipk_(?:live|test)_[0-9A-Za-z]{50}")
CLIENT_SECRET_RE = re.compile(r"ips_[0-9A-Za-z]{20,}")
INVITATION_LINK_RE = re.compile(r"/invitations/([A-Za-z0-9_-]{40,})/")
WEBHOOK_SECRET_RE = re.compile(r"whsec_[0-9A-Za-z]{40}")
SUBMISSION_RE = re.compile(r'name="submission" value="([^"]+)"')


def last_changed(value: str) -> str:
    """The value with its last character changed (never the value itself: a 1 in 62 flake)."""
    return value[:-1] + ("1" if value.endswith("0") else "0")


class Sweep:
    """Record every response, and which response may reveal each secret."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, bytes]] = []
        self.revealed_by: dict[str, set[str]] = {}  # secret -> labels allowed to hold it
        self.fragments: dict[str, list[str]] = {}  # secret -> substrings that would betray it

    def record(self, label: str, response):
        body = response.content if hasattr(response, "content") else response
        if getattr(response, "streaming", False):
            body = b"".join(response.streaming_content)
        self.responses.append((label, body if isinstance(body, bytes) else body.encode()))
        return response

    def issued(self, secret: str, *, revealed_by: str, fragments: list[str] | None = None) -> str:
        assert secret not in self.revealed_by, "a secret was issued twice"
        self.revealed_by[secret] = {revealed_by}
        self.fragments[secret] = [secret, *(fragments or [])]
        return secret

    def also_revealed_by(self, secret: str, label: str) -> None:
        self.revealed_by[secret].add(label)


def api_key_fragments(key: str) -> list[str]:
    # The key id (first 12 body characters) and the checksum are public; the rest is the secret.
    return [key[len("ipk_live_") + 12 : -6]]


def client_secret_fragments(secret: str) -> list[str]:
    return [secret[8:]]  # the first 8 characters are the stored, displayed hint


def table_dump() -> str:
    """Return every row of every table as text (raw SQL, so nothing the ORM hides is missed)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (introspected names)
            for row in cursor.fetchall():
                chunks.append(
                    f"{table}: "
                    + " | ".join(
                        str(v) if not isinstance(v, bytes | memoryview) else bytes(v).decode("latin-1")
                        for v in row
                    )
                )
    return "\n".join(chunks)


@pytest.mark.django_db(transaction=True)
def test_no_secret_anywhere_but_its_own_reveal(caplog, settings, organization, owner, scopes, make_app):
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 0
    settings.PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = 0
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # log every SQL statement with its parameters
    sweep = Sweep()
    record = sweep.record
    browser = Client()
    browser.force_login(owner)
    ScopeFactory(name="m2m_apps:manage")  # the CLI key below manages M2M applications over REST too
    try:
        # --- API keys: CLI -------------------------------------------------------------------
        out = io.StringIO()
        call_command(
            "create_api_key", "--org=acme", "--name=cli", f"--owner={owner.email}",
            "--scopes=api_keys:manage api_keys:verify orders:read m2m_apps:manage", "--json", stdout=out,
        )  # fmt: skip
        record("cli api key", out.getvalue().encode())
        cli_key = json.loads(out.getvalue())["key"]
        sweep.issued(cli_key, revealed_by="cli api key", fragments=api_key_fragments(cli_key))
        machine = Client(HTTP_AUTHORIZATION=f"Bearer {cli_key}")

        # --- API keys: dashboard create, rotate, revoke -------------------------------------
        create_url = reverse("org-api-key-create", args=["acme"])
        token = SUBMISSION_RE.search(record("dash key form", browser.get(create_url)).content.decode()).group(
            1
        )
        response = record(
            "dash key create",
            browser.post(create_url, {"submission": token, "name": "web", "owner": owner.pk,
                                      "scopes": ["orders:read"], "environment": "live"}),
        )  # fmt: skip
        dash_key = API_KEY_RE.search(response.content.decode()).group(0)
        sweep.issued(dash_key, revealed_by="dash key create", fragments=api_key_fragments(dash_key))
        row = ApiKey.objects.get(name="web")
        rotate_url = reverse("org-api-key-rotate", args=["acme", row.key_id])
        token = SUBMISSION_RE.search(
            record("dash rotate form", browser.get(rotate_url)).content.decode()
        ).group(1)
        response = record(
            "dash key rotate", browser.post(rotate_url, {"submission": token, "overlap_hours": "1"})
        )
        dash_rotated = API_KEY_RE.search(response.content.decode()).group(0)
        sweep.issued(dash_rotated, revealed_by="dash key rotate", fragments=api_key_fragments(dash_rotated))
        successor = ApiKey.objects.get(replaces=row)
        record("dash key detail", browser.get(reverse("org-api-key-detail", args=["acme", row.key_id])))
        record(
            "dash key revoke",
            browser.post(
                reverse("org-api-key-revoke", args=["acme", successor.key_id]), {"reason": "x"}, follow=True
            ),
        )
        record("dash key list", browser.get(reverse("org-api-keys", args=["acme"])))

        # --- API keys: REST API by session and by key ---------------------------------------
        api = "/api/v1/orgs/acme/api-keys/"
        response = record(
            "api key create",
            browser.post(api, {"name": "svc", "scopes": ["orders:read"]}, "application/json"),
        )
        api_key, api_id = response.json()["key"], response.json()["id"]
        sweep.issued(api_key, revealed_by="api key create", fragments=api_key_fragments(api_key))
        response = record(
            "api key rotate", machine.post(f"{api}{api_id}/rotate/", {"overlap_hours": 1}, "application/json")
        )
        api_rotated = response.json()["successor"]["key"]
        sweep.issued(api_rotated, revealed_by="api key rotate", fragments=api_key_fragments(api_rotated))
        record("api key list", machine.get(api))
        record(
            "api key revoke", machine.post(f"{api}{api_id}/revoke/", {"reason": "done"}, "application/json")
        )

        # --- API keys: use, misuse and error pages -----------------------------------------
        for key in [k for k in sweep.revealed_by if k.startswith("ipk_")]:
            record("whoami bearer", Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/whoami"))
            record("whoami header", Client(HTTP_X_API_KEY=key).get("/api/v1/whoami"))
            record("verify", machine.post("/api/v1/keys/verify", {"key": key}, "application/json"))
            record("verify form", machine.post("/api/v1/keys/verify", {"key": key}))
            record("key in query", Client().get(f"/api/v1/whoami?api_key={key}"))
            record("key in path 404", browser.get(f"{api}{key}/"))
            record("key in page path 404", browser.get(f"/orgs/acme/api-keys/{key}/"))
            record("key in unknown url 404", Client().get(f"/no-such-page/{key}"))
            record("key with bad scheme", Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/whoami"))
            record("key one char off", Client(HTTP_X_API_KEY=last_changed(key)).get("/api/v1/whoami"))
            record(
                "key as oauth secret",
                Client().post(
                    "/oauth/token",
                    {"grant_type": "client_credentials", "client_id": "x", "client_secret": key},
                ),
            )

        # --- Client secrets: CLI, dashboard create and rotate, service ----------------------
        out = io.StringIO()
        call_command("create_m2m_app", org="acme", name="CLI app", owner=owner.email, json=True, stdout=out)
        record("cli m2m app", out.getvalue().encode())
        cli_app = json.loads(out.getvalue())
        sweep.issued(
            cli_app["client_secret"],
            revealed_by="cli m2m app",
            fragments=client_secret_fragments(cli_app["client_secret"]),
        )
        record("dash app form", browser.get(reverse("org-app-create", args=["acme"])))
        response = record(
            "dash app create",
            browser.post(
                reverse("org-app-create", args=["acme"]),
                {"name": "Dash app", "owner": owner.pk, "scopes": ["orders:read"], "token_lifetime": 900},
            ),
        )
        assert response.status_code == 201, response.content
        dash_secret = CLIENT_SECRET_RE.search(response.content.decode()).group(0)
        sweep.issued(
            dash_secret, revealed_by="dash app create", fragments=client_secret_fragments(dash_secret)
        )
        dash_app = M2MApplication.objects.get(name="Dash app")
        response = record(
            "dash secret rotate",
            browser.post(reverse("org-app-secret-rotate", args=["acme", dash_app.pk]), {"overlap_hours": 1}),
        )
        rotated_secret = CLIENT_SECRET_RE.search(response.content.decode()).group(0)
        sweep.issued(
            rotated_secret,
            revealed_by="dash secret rotate",
            fragments=client_secret_fragments(rotated_secret),
        )
        record("dash app detail", browser.get(reverse("org-app-detail", args=["acme", dash_app.pk])))
        record("dash app list", browser.get(reverse("org-apps", args=["acme"])))
        # --- Client secrets: REST API by session and by key ----------------------------------
        apps_api = "/api/v1/orgs/acme/m2m-apps/"
        response = record(
            "api app create",
            browser.post(apps_api, {"name": "REST app", "scopes": ["orders:read"]}, "application/json"),
        )
        assert response.status_code == 201, response.content
        rest_app = response.json()
        sweep.issued(
            rest_app["client_secret"],
            revealed_by="api app create",
            fragments=client_secret_fragments(rest_app["client_secret"]),
        )
        rest_url = f"{apps_api}{rest_app['id']}/"
        response = record(
            "api app rotate",
            machine.post(f"{rest_url}rotate-secret/", {"overlap_hours": 1}, "application/json"),
        )
        assert response.status_code == 201, response.content
        rest_rotated = response.json()["client_secret"]
        sweep.issued(
            rest_rotated, revealed_by="api app rotate", fragments=client_secret_fragments(rest_rotated)
        )
        record("api app list", machine.get(apps_api))
        record("api app detail", browser.get(rest_url))
        record("api app update", machine.patch(rest_url, {"name": "REST app v2"}, "application/json"))
        first_secret_id = response.json()["application"]["secrets"][-1]["id"]
        record("api app secret revoke", machine.post(f"{rest_url}secrets/{first_secret_id}/revoke/"))
        record(
            "revoked secret",
            Client().post(
                "/oauth/token",
                {"grant_type": "client_credentials"},
                HTTP_AUTHORIZATION=basic(rest_app["client_id"], rest_app["client_secret"]),
            ),
        )
        record("secret in api path 404", browser.get(f"{apps_api}{rest_rotated}/"))
        service_app = make_app(name="Service app")
        sweep.issued(
            service_app.client_secret,
            revealed_by="(service call)",
            fragments=client_secret_fragments(service_app.client_secret),
        )

        # --- Signing keys: rotate, then tokens from both keys --------------------------------
        oauth = Client()
        apps = [
            (cli_app["client_id"], cli_app["client_secret"]),
            (dash_app.client_id, dash_secret),
            (dash_app.client_id, rotated_secret),
            (service_app.client_id, service_app.client_secret),
            (rest_app["client_id"], rest_rotated),
        ]
        tokens = []
        for round_ in range(2):
            for client_id, secret in apps:
                label = f"token {round_} {client_id}"
                response = record(
                    label,
                    oauth.post(
                        "/oauth/token",
                        {"grant_type": "client_credentials"},
                        HTTP_AUTHORIZATION=basic(client_id, secret),
                    ),
                )
                assert response.status_code == 200, response.content
                access = json.loads(response.content)["access_token"]
                sweep.issued(access, revealed_by=label, fragments=[access.rsplit(".", 1)[1]])
                tokens.append((client_id, secret, access))
                label = f"token body {round_} {client_id}"
                response = record(
                    label,
                    oauth.post(
                        "/oauth/token",
                        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
                    ),
                )
                access = json.loads(response.content)["access_token"]
                sweep.issued(access, revealed_by=label, fragments=[access.rsplit(".", 1)[1]])
                record(
                    "wrong secret",
                    oauth.post(
                        "/oauth/token",
                        {"grant_type": "client_credentials"},
                        HTTP_AUTHORIZATION=basic(client_id, last_changed(secret)),
                    ),
                )
                record(
                    "secret in query",
                    oauth.post(f"/oauth/token?client_secret={secret}", {"grant_type": "client_credentials"}),
                )
                record("secret as api key", Client(HTTP_X_API_KEY=secret).get("/api/v1/whoami"))
            if round_ == 0:
                out = io.StringIO()
                call_command("rotate_signing_key", "--algorithm=ES256", stdout=out)
                record("cli rotate signing key", out.getvalue().encode())
        for client_id, secret, access in tokens:
            auth = basic(client_id, secret)
            record("introspect", oauth.post("/oauth/introspect", {"token": access}, HTTP_AUTHORIZATION=auth))
            record("whoami jwt", Client(HTTP_AUTHORIZATION=f"Bearer {access}").get("/api/v1/whoami"))
            record("verify jwt", machine.post("/api/v1/keys/verify", {"key": access}, "application/json"))
            record("token in query", Client().get(f"/api/v1/whoami?access_token={access}"))
            record("token in unknown url 404", Client().get(f"/no-such-page/{access}"))
        for client_id, secret, access in tokens:
            record(
                "revoke",
                oauth.post("/oauth/revoke", {"token": access}, HTTP_AUTHORIZATION=basic(client_id, secret)),
            )
            record(
                "introspect revoked",
                oauth.post(
                    "/oauth/introspect", {"token": access}, HTTP_AUTHORIZATION=basic(client_id, secret)
                ),
            )
        # --- Token exchange: a gateway trades an API key for a JWT (RFC 8693) -----------------
        gateway = make_app(name="Gateway")
        sweep.issued(
            gateway.client_secret,
            revealed_by="(service call)",
            fragments=client_secret_fragments(gateway.client_secret),
        )
        m2m_app_set_exchange(application=gateway.application, allowed=True, actor=None)
        gateway_auth = basic(gateway.client_id, gateway.client_secret)
        # Live, bad checksum (its last character changed), revoked, live.
        for subject in (cli_key, last_changed(cli_key), dash_rotated, api_rotated):
            form = {
                "grant_type": GRANT_TYPE,
                "subject_token": subject,
                "subject_token_type": API_KEY_TOKEN_TYPE,
            }
            response = record("exchange", oauth.post("/oauth/token", form, HTTP_AUTHORIZATION=gateway_auth))
            if response.status_code == 200:
                exchanged = json.loads(response.content)["access_token"]
                label = f"exchange {len(sweep.revealed_by)}"
                sweep.responses[-1] = (label, sweep.responses[-1][1])
                sweep.issued(exchanged, revealed_by=label, fragments=[exchanged.rsplit(".", 1)[1]])
                record(
                    "exchanged whoami", Client(HTTP_AUTHORIZATION=f"Bearer {exchanged}").get("/api/v1/whoami")
                )
                record(
                    "exchanged introspect",
                    oauth.post("/oauth/introspect", {"token": exchanged}, HTTP_AUTHORIZATION=gateway_auth),
                )
            record(
                "exchange by body",
                oauth.post(
                    "/oauth/token",
                    {
                        **form,
                        "client_id": gateway.client_id,
                        "client_secret": gateway.client_secret[:-1] + "x",
                    },
                ),
            )
        # --- private_key_jwt: the service's private key never reaches the portal; its assertions
        # are used (token, replay, wrong audience, introspection, revocation) and kept nowhere --
        service_key = ec.generate_private_key(ec.SECP256R1())
        service_pem = service_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        keyed, _no_secret = m2m_app_create(
            organization=organization, name="Keyed", owner=owner, actor=owner, scopes=["orders:read"],
            auth_method="private_key_jwt",
            public_key=service_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
        )  # fmt: skip
        sweep.issued(
            service_pem,
            revealed_by="(held by the service)",
            fragments=[ECAlgorithm.to_jwk(service_key, as_dict=True)["d"], service_pem.splitlines()[1]],
        )

        def client_assertion(**claims) -> dict:
            now = int(time.time())
            signed = jwt.encode(
                {"iss": keyed.client_id, "sub": keyed.client_id, "iat": now, "exp": now + 60,
                 "aud": settings.PORTAL_ISSUER + "/oauth/token", "jti": secrets.token_urlsafe(16), **claims},
                service_pem, algorithm="ES256",
            )  # fmt: skip
            sweep.issued(signed, revealed_by="(sent by the service)", fragments=[signed.rsplit(".", 1)[1]])
            return {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": signed}

        used = client_assertion()
        response = record(
            "keyed token", oauth.post("/oauth/token", {"grant_type": "client_credentials", **used})
        )
        keyed_access = json.loads(response.content)["access_token"]
        sweep.issued(keyed_access, revealed_by="keyed token", fragments=[keyed_access.rsplit(".", 1)[1]])
        record("keyed replay", oauth.post("/oauth/token", {"grant_type": "client_credentials", **used}))
        record(
            "keyed wrong aud",
            oauth.post(
                "/oauth/token",
                {"grant_type": "client_credentials", **client_assertion(aud="https://elsewhere.example")},
            ),
        )
        record(
            "keyed introspect", oauth.post("/oauth/introspect", {"token": keyed_access, **client_assertion()})
        )
        record("keyed revoke", oauth.post("/oauth/revoke", {"token": keyed_access, **client_assertion()}))
        record("dash keyed app", browser.get(reverse("org-app-detail", args=["acme", keyed.pk])))

        # --- workload identity federation: a platform's token (used at the token endpoint,
        # replayed, and pasted on the "test a token" page) is kept nowhere, shown nowhere ----
        settings.PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = True
        with LocalIssuer() as platform:
            trust, _request = federated_identity_create(
                application=keyed, actor=None, issuer=platform.url, preset="github_actions",
                subject="repo:acme/api:ref:refs/heads/main",
            )  # fmt: skip

            def platform_token(**claims) -> str:
                token = platform.github_actions(audience=settings.PORTAL_ISSUER, **claims)
                sweep.issued(token, revealed_by="(held by the CI job)", fragments=[token.rsplit(".", 1)[1]])
                return token

            federated = {
                "grant_type": "client_credentials",
                "client_id": keyed.client_id,
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": platform_token(),
            }
            response = record("federated token", oauth.post("/oauth/token", federated))
            federated_access = json.loads(response.content)["access_token"]
            sweep.issued(
                federated_access,
                revealed_by="federated token",
                fragments=[federated_access.rsplit(".", 1)[1]],
            )
            record("federated replay", oauth.post("/oauth/token", federated))
            test_page = reverse("org-federated-test", args=["acme", trust.pk])
            record("federated test ok", browser.post(test_page, {"token": platform_token()}))
            record(
                "federated test bad",
                browser.post(test_page, {"token": platform_token(aud="https://x.example")}),
            )
            record("federated detail", browser.get(reverse("org-federated-detail", args=["acme", trust.pk])))
        record("jwks", Client().get("/.well-known/jwks.json"))
        record("metadata", Client().get("/.well-known/oauth-authorization-server"))
        record(
            "dash app secret revoke",
            browser.post(
                reverse(
                    "org-app-secret-revoke",
                    args=["acme", dash_app.pk, dash_app.secrets.order_by("created_at").first().pk],
                ),
                follow=True,
            ),
        )
        record(
            "dash app revoke",
            browser.post(reverse("org-app-revoke", args=["acme", dash_app.pk]), follow=True),
        )

        # --- Invitation tokens: invite, open, accept, reuse ---------------------------------
        response = record(
            "invite",
            browser.post(
                reverse("org-invite", args=["acme"]),
                {"email": "new@acme.test", "role": "member"},
                follow=True,
            ),
        )
        assert len(mail.outbox) == 1, response.content
        email = mail.outbox[0].body
        record("invitation email", email.encode())
        invitation_token = INVITATION_LINK_RE.search(email).group(1)
        sweep.issued(invitation_token, revealed_by="invitation email")
        link = reverse("invitation-accept", args=[invitation_token])
        invitee = Client()
        # The link's own pages carry it (the form posts back to it): that is its use, not a leak.
        for label, response in (
            ("invitation page", invitee.get(link)),
            (
                "invitation page",
                invitee.post(
                    link,
                    {
                        "full_name": "New Person",
                        "password1": "a-long-new-passphrase-1",
                        "password2": "a-long-new-passphrase-1",
                    },
                ),
            ),
        ):
            record(label, response)
        sweep.also_revealed_by(invitation_token, "invitation page")
        assert Invitation.objects.get(email="new@acme.test").accepted_at is not None
        record("invitation reused", Client().get(link))
        record("members page", browser.get(reverse("org-members", args=["acme"])))

        # --- Leak reports: GitHub secret scanning reports a key and a client secret -------
        scanner = ec.generate_private_key(ec.SECP256R1())
        settings.PORTAL_SECRET_SCANNING_PUBLIC_KEYS = keys_document(("sweep", scanner))
        leaked = [cli_key, cli_app["client_secret"]]
        body = json.dumps([{"token": t, "type": "t", "url": "https://github.com/x", "source": "content"}
                           for t in leaked]).encode()  # fmt: skip
        for label in ("leak report", "leak report replay"):
            record(
                label,
                Client().post(
                    "/api/v1/secret-scanning/reports", data=body, content_type="application/json",
                    headers={"Github-Public-Key-Identifier": "sweep",
                             "Github-Public-Key-Signature": sign(body, scanner)},
                ),
            )  # fmt: skip
        for m in mail.outbox[1:]:
            record("leak notice", f"{m.subject}\n{m.body}".encode())
        assert len(mail.outbox) == 3, [m.subject for m in mail.outbox]
        cli_row = ApiKey.objects.get(name="cli")
        record("leaked key page", browser.get(reverse("org-api-key-detail", args=["acme", cli_row.key_id])))
        cli_app_row = M2MApplication.objects.get(client_id=cli_app["client_id"])
        record("leaked app page", browser.get(reverse("org-app-detail", args=["acme", cli_app_row.pk])))
        # --- Webhook signing secrets: dashboard create and rotate, deliveries ------------------
        settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
        with Receiver() as hook_receiver:
            hooks_url = reverse("org-webhook-create", args=["acme"])
            token = SUBMISSION_RE.search(record("dash hook form", browser.get(hooks_url)).content.decode())
            response = record(
                "dash hook create",
                browser.post(hooks_url, {"url": hook_receiver.url, "event_types": ["created", "revoked"],
                                         "submission": token.group(1)}),
            )  # fmt: skip
            hook_secret = WEBHOOK_SECRET_RE.search(response.content.decode()).group(0)
            sweep.issued(hook_secret, revealed_by="dash hook create", fragments=[hook_secret[10:]])
            endpoint = WebhookEndpoint.objects.get(url=hook_receiver.url)
            rotate_url = reverse("org-webhook-rotate", args=["acme", endpoint.pk])
            token = SUBMISSION_RE.search(
                record("dash hook rotate form", browser.get(rotate_url)).content.decode()
            )
            response = record(
                "dash hook rotate",
                browser.post(rotate_url, {"overlap_hours": "24", "submission": token.group(1)}),
            )
            rotated_hook_secret = WEBHOOK_SECRET_RE.search(response.content.decode()).group(0)
            sweep.issued(
                rotated_hook_secret, revealed_by="dash hook rotate", fragments=[rotated_hook_secret[10:]]
            )
            record(
                "dash hook ping",
                browser.post(reverse("org-webhook-ping", args=["acme", endpoint.pk]), follow=True),
            )
            api_key_create(organization=organization, name="hooked", owner=owner, scopes=[], actor=owner)
            hook_receiver.statuses.append(500)
            out = io.StringIO()
            call_command("deliver_webhooks", "--once", stdout=out)
            record("cli deliver webhooks", out.getvalue().encode())
            for delivery in endpoint.deliveries.exclude(state="succeeded"):
                record(
                    "dash hook retry",
                    browser.post(
                        reverse("org-webhook-delivery-retry", args=["acme", endpoint.pk, delivery.pk]),
                        follow=True,
                    ),
                )
            call_command("deliver_webhooks", "--once", stdout=out)
            for received in hook_receiver.received:  # what went over the wire: signatures, never the secret
                record("webhook request", json.dumps(received.headers).encode() + received.body)
            assert len(hook_receiver.received) == 3
            record("dash hook detail", browser.get(reverse("org-webhook-detail", args=["acme", endpoint.pk])))
            for leaked in (hook_secret, rotated_hook_secret):  # pasted into a URL by mistake
                record("hook secret in unknown url 404", Client().get(f"/no-such-page/{leaked}"))
            record("dash hook list", browser.get(reverse("org-webhooks", args=["acme"])))

        # --- Staff views and the audit log -------------------------------------------------
        staff = Client()
        staff.force_login(UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True))
        for model in (
            "credentials_apikey",
            "tokens_m2mapplication",
            "tokens_clientsecret",
            "tokens_signingkey",
            "portal_invitation",
            "portal_auditevent",
            "credentials_leakreport",
            "credentials_webhookendpoint",
            "credentials_webhookdelivery",
        ):
            record(f"admin {model}", staff.get(reverse(f"admin:{model}_changelist")))
        for key_row in ApiKey.objects.all():
            record("admin key", staff.get(reverse("admin:credentials_apikey_change", args=[key_row.pk])))
        assert LeakReport.objects.count() == 2
        for report in LeakReport.objects.all():
            record(
                "admin leak report",
                staff.get(reverse("admin:credentials_leakreport_change", args=[report.pk])),
            )
        record(
            "admin hook", staff.get(reverse("admin:credentials_webhookendpoint_change", args=[endpoint.pk]))
        )
        record("audit page", browser.get(reverse("org-audit", args=["acme"])))
    finally:
        connection.force_debug_cursor = False

    # --- The search -------------------------------------------------------------------------
    private_material = _private_material()
    assert len(private_material) >= 4  # two signing keys' private parts are looked for too
    logs = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert "SELECT" in logs and "INSERT" in logs  # SQL was logged, so the search covers it
    dump = table_dump()
    assert "credentials_apikey" in dump and "tokens_clientsecret" in dump and "django_session" in dump
    cached = b"".join(v for v in getattr(cache, "_cache", {}).values() if isinstance(v, bytes))

    kinds = {"ipk_": 0, "ips_": 0, "eyJ": 0}
    for secret, allowed in sweep.revealed_by.items():
        for kind in kinds:
            kinds[kind] += secret.startswith(kind)
        for fragment in sweep.fragments[secret]:
            assert fragment not in logs, ("in the logs", allowed)
            assert fragment not in dump, ("in the database", allowed)
            assert fragment.encode() not in cached, ("in the cache", allowed)
            holders = {label for label, body in sweep.responses if fragment.encode() in body}
            assert holders <= allowed, (allowed, holders)
    for fragment in private_material:
        assert fragment not in logs and fragment not in dump
        assert not [label for label, body in sweep.responses if fragment.encode() in body]
    # eyJ: 22 access tokens (minted and exchanged), 4 client assertions and the token one of them got,
    # 3 platform tokens (federation) and the token one of them got.
    assert kinds == {"ipk_": 5, "ips_": 7, "eyJ": 31}, kinds
    assert len([s for s in sweep.revealed_by if "PRIVATE KEY" in s]) == 1
    assert len([s for s in sweep.revealed_by if s.startswith("whsec_")]) == 2
