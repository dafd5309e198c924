"""Check the benchmark harness's pure parts: adapters, header encoding, ratios (no load is run)."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
import types
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def inprocess():
    return load("inprocess")


@pytest.fixture(scope="module")
def runner():
    pytest.importorskip("psutil", reason="the bench extra is not installed (make bench-smoke installs it)")
    return load("run")


def test_key_adapter_passes_the_key_by_keyword_and_fills_the_ip(inprocess):
    seen = {}

    def api_key_verify(*, key: str, ip: str | None = None, now=None):
        seen.update(key=key, ip=ip)
        return "principal"

    assert inprocess._call_with_key(api_key_verify, "ipk_live_x")() == "principal"
    assert seen == {"key": "ipk_live_x", "ip": "127.0.0.1"}


def test_key_adapter_passes_the_key_positionally(inprocess):
    assert inprocess._call_with_key(lambda raw_key: raw_key.upper(), "abc")() == "ABC"


def test_key_adapter_takes_the_first_positional_parameter_when_no_name_fits(inprocess):
    def api_key_verify(presented_secret: str, *, now=None):
        return presented_secret[::-1]

    assert inprocess._call_with_key(api_key_verify, "abc")() == "cba"


def test_key_adapter_refuses_an_unknown_required_parameter(inprocess):
    def api_key_verify(*, key: str, request):
        return True

    with pytest.raises(TypeError, match="request"):
        inprocess._call_with_key(api_key_verify, "k")


def test_verifier_adapter_finds_a_verifier_class(inprocess):
    module = types.ModuleType("tokens.verifier")

    class TokenVerifier:
        def __init__(self, *, issuer, audience, jwks_url):
            self.args = (issuer, audience, jwks_url)

        def verify(self, token):
            return {"token": token, "args": self.args}

    TokenVerifier.__module__ = module.__name__
    module.TokenVerifier = TokenVerifier
    call = inprocess._verifier_call(module, token="t", issuer="i", audience="a", jwks_url="u")
    assert call() == {"token": "t", "args": ("i", "a", "u")}


def test_verifier_adapter_falls_back_to_a_function(inprocess):
    module = types.ModuleType("tokens.verifier")
    module.verify_access_token = lambda token, *, issuer, audience, jwks_url: (token, issuer, audience)
    call = inprocess._verifier_call(module, token="t", issuer="i", audience="a", jwks_url="u")
    assert call() == ("t", "i", "a")


def test_verifier_adapter_says_when_it_finds_nothing(inprocess):
    with pytest.raises(LookupError):
        inprocess._verifier_call(types.ModuleType("empty"), token="t", issuer="i", audience="a", jwks_url="u")


def test_pyjwt_baseline_rejects_the_wrong_audience(inprocess):
    import jwt

    token, key = inprocess.rsa_token(issuer="https://iss", audience="https://aud")
    assert inprocess.pyjwt_decoder(token, key, issuer="https://iss", audience="https://aud")()["sub"]
    with pytest.raises(jwt.InvalidAudienceError):
        inprocess.pyjwt_decoder(token, key, issuer="https://iss", audience="https://other")()


def test_basic_header_form_encodes_id_and_secret(runner):
    header = runner.basic("id:1", "s3cret+/= é")
    scheme, _, value = header.partition(" ")
    client_id, _, secret = base64.b64decode(value).decode().partition(":")
    assert scheme == "Basic"
    assert (unquote_plus(client_id), unquote_plus(secret)) == ("id:1", "s3cret+/= é")


def test_ratios_wait_for_both_sides(runner):
    rows = {
        "portal": {"status": "ok", "throughput_rps": 900.0},
        "dot_fast": {"status": "ok", "throughput_rps": 450.0},
        "dot_stock": {"status": "unavailable", "reason": "x"},
    }
    assert runner.ratios(rows, ["dot_stock", "dot_fast"]) == {"dot_stock": None, "dot_fast": 2.0}
    assert runner.ratios({"portal": {"status": "unavailable"}}, ["dot_fast"]) == {"dot_fast": None}


def test_inprocess_ratios_by_throughput_and_by_median(runner):
    rows = {
        "portal": [
            {"name": "api_key_verify, cache hit", "status": "ok", "ops_per_s": 50000.0, "p50_us": 10.0}
        ],
        "peer": [
            {
                "name": "drf_api_key.is_valid (database path)",
                "status": "ok",
                "ops_per_s": 2500.0,
                "p50_us": 300.0,
            }
        ],
    }
    ratios = runner.inprocess_ratios(rows)
    assert ratios["api_key_verify cache hit / drf_api_key.is_valid"] == {"throughput": 20.0, "p50": 30.0}
    assert ratios["api_key_verify database path / drf_api_key.is_valid"] is None


def test_json_from_takes_the_last_json_line(runner):
    assert runner.json_from('Created.\n{"id": 1}\n{"key": "k"}\n') == {"key": "k"}
    with pytest.raises(runner.BenchError):
        runner.json_from("no json here")


def test_unknown_command_is_told_apart_from_a_failure(runner):
    missing = subprocess.CompletedProcess([], 1, stdout="", stderr="Unknown command: 'create_api_key'")
    broken = subprocess.CompletedProcess([], 1, stdout="", stderr="CommandError: no such org")
    assert runner.unknown_command(missing)
    assert not runner.unknown_command(broken)


def test_frame_package_names_site_packages_and_project(runner):
    assert runner.frame_package("/x/.venv/lib/python3.11/site-packages/django/db/models/query.py") == "django"
    assert runner.frame_package(str(runner.ROOT / "credentials" / "services.py")) == "credentials"
    assert runner.frame_package(f"{sys.base_prefix}/lib/python3.11/json/decoder.py") == "python stdlib"
    # py-spy's shortened forms
    assert runner.frame_package("psycopg/connection.py") == "psycopg"
    assert runner.frame_package("tokens/oauth.py") == "tokens"
    assert runner.frame_package("inspect.py") == "inspect"


def _report(*, token_fast: float | None, whoami: float, p99: float, rss: float) -> dict:
    ok = {"status": "ok"}
    return {
        "token_issuance": {
            "ratios": {"dot_stock": 80.0, "dot_fast": token_fast},
            "rows": {"portal": {**ok, "p99_ms": p99}},
        },
        "key_verification": {"ratios": {"apikey": whoami}, "rows": {}},
        "token_issuance_many": {"ratios": {"dot_fast": None}, "rows": {}},
        "key_verification_many": {"ratios": {"apikey": 1.4}, "rows": {}},
        "in_process": {
            "rows": {
                "portal": [{**ok, "name": "api_key_verify, cache hit", "ops_per_s": 120_000.0, "p50_us": 8.0}]
            },
            "ratios": {"tokens.verifier / pyjwt.decode (same token)": {"throughput": 1.0, "p50": 0.9}},
        },
        "memory": {"portal (token)": {"peak_rss_mb": rss}, "apikey": {"peak_rss_mb": 500.0}},
    }


def test_targets_warn_for_each_miss_and_never_for_what_was_not_measured(runner, capsys):
    checks = runner.check_targets(_report(token_fast=1.2, whoami=1.6, p99=55.0, rss=101.0))
    by_name = {c["name"]: c["met"] for c in checks}
    assert by_name["token issuance / DOT fast hasher"] is False
    assert by_name["token issuance p99"] is False  # at most 40 ms
    assert by_name["key verification / HasAPIKey"] is True
    assert by_name["token issuance, many applications / DOT fast hasher"] is None
    assert by_name["key verification, many keys / HasAPIKey"] is True
    assert by_name["api_key_verify cache hit, ops/s"] is True
    assert by_name["tokens.verifier / PyJWT by p50"] is False
    assert by_name["peak RSS per portal worker"] is True  # the peers' memory is not the portal's
    runner.print_targets(checks)
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 3
    assert any("token issuance p99 is 55.00 ms" in line and "<= 40 ms" in line for line in warnings)


def test_the_wrk_script_presents_a_credentials_file_round_robin():
    script = (BENCH / "lua" / "request.lua").read_text()
    assert "BENCH_CREDENTIALS_FILE" in script and "io.lines(credentials_file)" in script
    assert "position % #credentials + 1" in script
