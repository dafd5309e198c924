"""docs/m2m.md's federation snippets run as written: a GitHub Actions step and a Kubernetes pod's command.

The portal runs as a live server; a local issuer (tests/support/oidc_issuer.py) plays GitHub's
runner token endpoint and the cluster's service-account issuer. The shell runs the documented
script with curl and jq, the environment the platform would give it, and no stored secret.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

from tests.support.oidc_issuer import LocalIssuer
from tokens.verifier import TokenVerifier

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(settings.BASE_DIR) / "docs" / "m2m.md"
EXAMPLE_URL = "https://portal.example.com"
#: How GitHub runs a `run:` step on Linux by default (`shell: bash`).
GITHUB_SHELL = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]


def _block(after: str, language: str) -> str:
    """Return the first `language` code block after the heading `after`."""
    return re.search(re.escape(after) + rf".*?```{language}\n(.*?)```", DOCS.read_text(), re.S).group(1)


@pytest.fixture
def portal(live_server, settings):
    settings.PORTAL_ISSUER = live_server.url
    settings.PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = True
    return live_server.url


@pytest.fixture
def issuer():
    with LocalIssuer() as running:
        yield running


def _claims(portal: str, access_token: str) -> dict:
    verifier = TokenVerifier(
        issuer=portal, audience=settings.PORTAL_DEFAULT_AUDIENCE, jwks_url=portal + "/.well-known/jwks.json"
    )
    return verifier.verify(access_token).claims


def _add_trust_as_documented(client_id: str, issuer_url: str, **replace) -> dict:
    command = _block("### Setting a trust up", "sh")
    command = " ".join(line.rstrip("\\").strip() for line in command.splitlines() if not line.startswith("#"))
    command = command.replace("m2m_…", client_id).replace(
        "https://token.actions.githubusercontent.com", issuer_url
    )
    for old, new in replace.items():
        command = command.replace(old, new)
    argv = shlex.split(command)
    assert argv[:3] == ["python", "manage.py", "add_federated_identity"]
    out = StringIO()
    call_command(*argv[2:], stdout=out)
    return json.loads(out.getvalue())


def test_the_github_actions_workflow_gets_a_portal_token_without_a_secret(portal, issuer, app, tmp_path):
    trust = _add_trust_as_documented(app.client_id, issuer.url)
    workflow = yaml.safe_load(_block("### From GitHub Actions", "yaml"))
    assert workflow["permissions"]["id-token"] == "write"
    job = workflow["jobs"]["deploy"]
    assert job["env"]["PORTAL_URL"] == EXAMPLE_URL
    github_env = tmp_path / "github_env"
    env = {
        "PATH": "/usr/bin:/bin",
        **job["env"],
        "PORTAL_URL": portal,
        "CLIENT_ID": app.client_id,
        # What GitHub gives a job with `id-token: write`:
        "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.url + "/_apis/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": issuer.actions_request_token,
        "GITHUB_ENV": str(github_env),
    }
    step = job["steps"][0]["run"]
    result = subprocess.run(GITHUB_SHELL + [step], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "::add-mask::eyJ" in result.stdout
    access_token = github_env.read_text().strip().removeprefix("PORTAL_ACCESS_TOKEN=")
    claims = _claims(portal, access_token)
    assert claims["sub"] == app.client_id
    assert claims["fed"] == {
        "id": trust["id"],
        "iss": issuer.url,
        "sub": "repo:acme/billing:ref:refs/heads/main",
    }
    # The second step uses it.
    whoami = subprocess.run(
        GITHUB_SHELL + [job["steps"][1]["run"]],
        env={**env, "PORTAL_ACCESS_TOKEN": access_token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["credential_type"] == "access_token"
    # A job on another branch gets a token GitHub signs just as well, and the portal refuses it.
    issuer.actions_job = {"repository": "acme/billing", "ref": "refs/heads/feature"}
    refused = subprocess.run(GITHUB_SHELL + [step], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0


def test_the_kubernetes_pod_spec_gets_a_portal_token_without_a_secret(portal, issuer, app, tmp_path):
    pod = yaml.safe_load(_block("### From a Kubernetes pod", "yaml"))
    namespace, account = pod["metadata"]["namespace"], pod["spec"]["serviceAccountName"]
    _add_trust_as_documented(
        app.client_id,
        issuer.url,
        **{
            "--preset github_actions": "--preset kubernetes",
            "repo:acme/billing:ref:refs/heads/main": f"system:serviceaccount:{namespace}:{account}",
            "--condition repository=acme/billing": "",
            "--condition job_workflow_ref=acme/billing/.github/workflows/deploy.yml@refs/heads/main": "",
            "--max-token-age 900": "--max-token-age 3600",
        },
    )
    container = pod["spec"]["containers"][0]
    projected = pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert projected["audience"] == env["PORTAL_URL"] == EXAMPLE_URL
    mount = container["volumeMounts"][0]["mountPath"]
    # The kubelet's projected token, at the mounted path (here a temporary directory).
    (tmp_path / projected["path"]).write_text(
        issuer.kubernetes(audience=portal, namespace=namespace, service_account=account)
    )
    script = container["args"][0].replace(mount, str(tmp_path))
    assert container["command"] == ["/bin/sh", "-c"]
    result = subprocess.run(
        ["/bin/sh", "-e", "-c", script],
        env={"PATH": "/usr/bin:/bin", **env, "PORTAL_URL": portal, "CLIENT_ID": app.client_id},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    whoami = json.loads(result.stdout)
    assert whoami["credential_type"] == "access_token" and whoami["organization"] == "acme"
