"""A local OIDC issuer for the federation tests: discovery, a JWKS, and tokens shaped like each platform's.

It also answers like GitHub's runner token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), so a
workflow step can run as written.

A small threaded HTTP server on 127.0.0.1 serves `/.well-known/openid-configuration` and
`/jwks.json`, signing tokens with keys it generates (RS256 by default, as GitHub, GitLab and
Kubernetes do; ES256 for SPIFFE). It counts the requests it serves, can rotate its key, and
can be made slow, broken or oversized, so the tests see what the portal does with each.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.servers import LocalHTTPServer


def _new_key(alg: str):
    if alg.startswith("ES"):
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private_key, kid: str, alg: str) -> dict:
    """Return the public JWK of a private key, with `kid`, `alg` and `use`."""
    if alg.startswith("ES"):
        jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class LocalIssuer(LocalHTTPServer):
    """An OIDC issuer at http://127.0.0.1:<port> (start with `with LocalIssuer() as issuer:`)."""

    def __init__(self, alg: str = "RS256") -> None:
        self.alg = alg
        self.key = _new_key(alg)
        self.kid = secrets.token_hex(8)
        self.served: list[str] = []
        self.delay = 0.0  # seconds to wait before answering
        self.jwks_override: bytes | None = None  # served instead of the real JWKS
        self.discovery_issuer: str | None = None  # served as the document's issuer
        # GitHub's runner endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): this bearer token gets a job's token.
        self.actions_request_token = secrets.token_urlsafe(24)
        self.actions_job: dict = {"repository": "acme/billing", "ref": "refs/heads/main"}
        super().__init__(self._handler())
        self.url = self.base

    def _handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def do_GET(self):
                issuer.served.append(self.path)
                if issuer.delay:
                    time.sleep(issuer.delay)
                if self.path == "/.well-known/openid-configuration":
                    body = json.dumps(
                        {
                            "issuer": issuer.discovery_issuer or issuer.url,
                            "jwks_uri": issuer.url + "/jwks.json",
                            "id_token_signing_alg_values_supported": [issuer.alg],
                            "response_types_supported": ["id_token"],
                            "subject_types_supported": ["public"],
                        }
                    ).encode()
                elif self.path == "/jwks.json":
                    body = issuer.jwks_override or json.dumps(issuer.jwks()).encode()
                elif self.path.startswith("/_apis/token"):
                    if (
                        self.headers.get("Authorization", "").lower()
                        != "bearer " + issuer.actions_request_token.lower()
                    ):
                        self.send_error(401)
                        return
                    query = parse_qs(urlsplit(self.path).query)
                    token = issuer.github_actions(audience=query["audience"][0], **issuer.actions_job)
                    body = json.dumps({"count": 1, "value": token}).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        return Handler

    def jwks(self) -> dict:
        """Return the JWKS it publishes now (its current key only)."""
        return {"keys": [public_jwk(self.key, self.kid, self.alg)]}

    def rotate(self) -> None:
        """Sign with a new key from now on and publish only that one (the old kid is dropped)."""
        self.key = _new_key(self.alg)
        self.kid = secrets.token_hex(8)

    def fetches(self) -> int:
        """Return how many discovery and JWKS requests it served."""
        return len(self.served)

    def token(self, claims: dict, *, headers: dict | None = None, key=None, alg: str | None = None) -> str:
        """Return a token it signs; iss, iat, nbf, exp (5 minutes) and jti are filled in (None drops one)."""
        now = int(time.time())
        payload = {"iss": self.url, "iat": now, "nbf": now, "exp": now + 300, "jti": secrets.token_hex(12)}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload,
            key or self.key,
            algorithm=alg or self.alg,
            headers={"kid": self.kid, "typ": "JWT", **(headers or {})},
        )

    # --- each platform's claim shapes (as documented by the platform) ---------------------------

    def github_actions(
        self, *, audience: str, repository: str = "acme/api", ref: str = "refs/heads/main", **extra
    ) -> str:
        """A GitHub Actions OIDC token (docs.github.com: "About security hardening with OpenID Connect")."""
        owner = repository.split("/")[0]
        environment = extra.pop("environment", None)
        subject = (
            f"repo:{repository}:environment:{environment}" if environment else f"repo:{repository}:ref:{ref}"
        )
        claims = {
            "sub": subject,
            "aud": audience,
            "ref": ref,
            "sha": secrets.token_hex(20),
            "repository": repository,
            "repository_owner": owner,
            "repository_owner_id": "1234567",
            "repository_id": "7654321",
            "repository_visibility": "private",
            "run_id": "9876543210",
            "run_number": "42",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
            "actor": "octocat",
            "actor_id": "583231",
            "workflow": "deploy",
            "workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
            "job_workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
            "head_ref": "",
            "base_ref": "",
            "event_name": "push",
            "ref_type": "branch",
            "ref_protected": "true",
        }
        if environment:
            claims["environment"] = environment
        claims.update(extra)
        return self.token(claims, headers={"x5t": secrets.token_urlsafe(20)})

    def gitlab_ci(self, *, audience: str, project_path: str = "acme/api", ref: str = "main", **extra) -> str:
        """A GitLab CI `id_tokens` token (docs.gitlab.com: "OIDC Authentication Using ID Tokens")."""
        claims = {
            "sub": f"project_path:{project_path}:ref_type:branch:ref:{ref}",
            "aud": audience,
            "namespace_id": "72",
            "namespace_path": project_path.split("/")[0],
            "project_id": "20",
            "project_path": project_path,
            "user_id": "1",
            "user_login": "dev",
            "user_email": "dev@acme.example",
            "pipeline_id": "574",
            "pipeline_source": "push",
            "job_id": "302",
            "ref": ref,
            "ref_type": "branch",
            "ref_path": f"refs/heads/{ref}",
            "ref_protected": "true",
            "runner_id": 1,
            "runner_environment": "gitlab-hosted",
            "sha": secrets.token_hex(20),
        }
        claims.update(extra)
        return self.token(claims)

    def kubernetes(
        self,
        *,
        audience: str,
        namespace: str = "payments",
        service_account: str = "api",
        lifetime: int = 3600,
    ) -> str:
        """A projected service-account token (kubernetes.io: "Service account token volume projection")."""
        now = int(time.time())
        claims = {
            "aud": [audience],
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "exp": now + lifetime,
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "node-1", "uid": secrets.token_hex(8)},
                "pod": {"name": f"{service_account}-7d9f8b6c5-x2x4z", "uid": secrets.token_hex(8)},
                "serviceaccount": {"name": service_account, "uid": secrets.token_hex(8)},
            },
        }
        return self.token(claims)

    def spiffe(self, *, audience: str, spiffe_id: str = "spiffe://acme.example/ns/payments/sa/api") -> str:
        """A JWT-SVID (SPIFFE JWT-SVID specification): sub is the SPIFFE ID, aud and exp required, no iss."""
        now = int(time.time())
        return self.token(
            {"iss": None, "nbf": None, "jti": None, "sub": spiffe_id, "aud": [audience], "exp": now + 300},
            headers={"typ": "JWT"},
        )
