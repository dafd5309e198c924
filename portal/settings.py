"""Settings for Identity Portal, read from the environment (see docs/configuration.md)."""

from __future__ import annotations

import base64
import builtins
import hashlib
import ipaddress
import logging
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from portal.infra.crypto import check_fernet_keys, parse_peppers

BASE_DIR = Path(__file__).resolve().parent.parent


class _Env(environ.Env):
    """django-environ, stricter: a malformed or out-of-range value stops start-up naming its variable.

    Every number declares its range; 0 is allowed only where docs/configuration.md documents
    what 0 means. django-environ's own `int` would crash on `1h` with a bare ValueError, its
    `float` reads `1e9` as 19, its `list` keeps the blank after a comma (`a, b` holds " b"), and
    its `bool` reads anything it does not know (`ture`, `yes please`) as false.
    Set but blank (as an env file often leaves them), a number, a list or a switch takes its default.
    """

    #: The spellings of a switch (any case); docs/configuration.md names them.
    TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
    FALSE_WORDS = frozenset({"0", "false", "no", "off"})

    def bool(self, var: str, default: bool | None) -> bool | None:
        raw = self.str(var, default="").strip()
        if not raw:
            return default
        if raw.lower() in self.TRUE_WORDS:
            return True
        if raw.lower() in self.FALSE_WORDS:
            return False
        raise ImproperlyConfigured(
            f"{var} must be 1 or 0 (true/false, yes/no, on/off), not {raw[:40]!r} "
            "(see docs/configuration.md)."
        )

    def int(self, var: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        return self._number(var, default, builtins.int, "a whole number", minimum, maximum)

    def float(self, var: str, default: float, *, minimum: float, maximum: float | None = None) -> float:
        return self._number(var, default, builtins.float, "a number", minimum, maximum)

    def _number(self, var, default, parse, kind: str, minimum, maximum):
        raw = self.str(var, default="").strip()
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value):
            raise ImproperlyConfigured(f"{var} must be {kind}, not {raw[:40]!r} (see docs/configuration.md).")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ImproperlyConfigured(
                f"{var} must be {bounds}, not {raw[:40]!r} (see docs/configuration.md)."
            )
        return value

    def list(self, var: str, default: list[str]) -> list[str]:
        raw = self.str(var, default="")
        items = [item.strip() for item in raw.split(",")]
        return [item for item in items if item] or default

    def addresses(self, var: str, *, networks: bool) -> list[str]:
        """Return a list of IP addresses (with `networks`, also CIDR networks), by default empty.

        An entry the portal cannot match would be skipped at request time without a word.
        """
        entries = self.list(var, default=[])
        for entry in entries:
            try:
                if networks:
                    ipaddress.ip_network(entry, strict=False)
                else:
                    ipaddress.ip_address(entry)
            except ValueError:
                what = (
                    "an IP address or network (10.0.0.0/24)" if networks else "an IP address, not a network"
                )
                raise ImproperlyConfigured(
                    f"{var} holds {entry[:60]!r}: each entry must be {what} (see docs/configuration.md)."
                ) from None
        return entries

    def absolute_uri(self, var: str, default: str) -> str:
        """Return an absolute URI with a host and no user or fragment, as RFC 8707 takes a resource.

        django-oauth-toolkit's `is_valid_resource_uri` (tokens.E002) says the same; it cannot be
        imported before the settings are.
        """
        value = self.str(var, default="").strip() or default
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  raises ValueError for a port that is no number or out of range
        except ValueError:
            parts = None
        if parts is None or not (parts.scheme and parts.hostname) or "@" in parts.netloc or "#" in value:
            raise ImproperlyConfigured(
                f"{var} must be an absolute URI without user or fragment (https://portal.example.com/api), "
                f"not {value[:80]!r} (see docs/configuration.md)."
            )
        return value


env = _Env()
# A local .env is a convenience for development; production sets real variables.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development-only fallbacks. They are never used with DEBUG off: a missing or weak
# secret then stops start-up with ImproperlyConfigured naming the variable.
_DEV_SECRET_KEY = "dev-insecure-secret-key-for-local-development-only-0123456789abcdef"
_DEV_PEPPERS = "1:dev-insecure-pepper-for-local-development-only-0123456789"
_DEV_SIGNING_KEY_ENCRYPTION_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"identity-portal development signing-key encryption key").digest()
).decode()


def _required_secret(name: str, dev_default: str, *, min_length: int) -> str:
    """Return a secret from the environment, refusing a missing or weak one outside DEBUG."""
    value = env.str(name, default="")
    if not value:
        if DEBUG:
            return dev_default
        raise ImproperlyConfigured(
            f"{name} is not set. It is required when DEBUG is off; see docs/configuration.md."
        )
    if not DEBUG and (len(value) < min_length or len(set(value)) < 8 or "insecure" in value):
        raise ImproperlyConfigured(
            f"{name} is too weak: use at least {min_length} random characters (see docs/configuration.md)."
        )
    return value


SECRET_KEY = _required_secret("SECRET_KEY", _DEV_SECRET_KEY, min_length=50)


def _dev_server_origin(address: str) -> tuple[str, str]:
    """Return the (URL, host name) a browser uses to reach a development server bound to `address`.

    `address` is runserver's `host:port`; a wildcard bind (0.0.0.0, ::) is reached on loopback.
    """
    host, _, port = address.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        raise ImproperlyConfigured(f"PORTAL_DEV_SERVER must be host:port, not {address!r}.")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104  a bind, not a listen
    netloc_host = f"[{host}]" if ":" in host else host
    return f"http://{netloc_host}:{port}", netloc_host


# `make run HOST=… PORT=…` passes the address the development server listens on, so tokens,
# metadata and links in emails name that address unless PORTAL_ISSUER / PORTAL_BASE_URL say otherwise.
PORTAL_DEV_SERVER = env.str("PORTAL_DEV_SERVER", default="127.0.0.1:8000")
_DEV_SERVER_URL, _DEV_SERVER_HOST = _dev_server_origin(PORTAL_DEV_SERVER)

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=list(dict.fromkeys(["127.0.0.1", "localhost", "[::1]", _DEV_SERVER_HOST])) if DEBUG else [],
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is not set. It is required when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "oauth2_provider",
    "django_prometheus",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "portal.apps.PortalConfig",
    "credentials.apps.CredentialsConfig",
    "tokens.apps.TokensConfig",
]

# portal.infra.lean.MachinePathMiddleware comes first: a request to /oauth/* or /.well-known/*
# (cookies or not), or a cookie-less one to /api/v1/whoami or /api/v1/keys/verify, runs this
# same list without the layers marked `browser` (sessions, CSRF, messages, allauth, MFA, static
# files); see portal/infra/lean.py. Each layer says here, once, whether a machine request needs it.
browser, every = True, False
_middleware_layers = [
    ("portal.infra.lean.MachinePathMiddleware", every),
    ("django_prometheus.middleware.PrometheusBeforeMiddleware", every),
    # Before any layer that may answer on its own (the HTTPS redirect, the request bounds): every
    # answer gets a request id and an access line.
    ("portal.infra.request_context.RequestContextMiddleware", every),
    ("portal.infra.observability.AccessLogMiddleware", every),
    ("django.middleware.security.SecurityMiddleware", every),
    ("portal.infra.bounds.RequestBoundsMiddleware", every),
    ("whitenoise.middleware.WhiteNoiseMiddleware", browser),
    ("csp.middleware.CSPMiddleware", every),
    ("portal.infra.faults.DatabaseOutageMiddleware", every),
    ("django.contrib.sessions.middleware.SessionMiddleware", browser),
    # Django's, answering a machine write to a URL without its trailing slash in JSON (no 301).
    ("portal.infra.common.CommonMiddleware", every),
    ("django.middleware.csrf.CsrfViewMiddleware", browser),
    ("django.contrib.auth.middleware.AuthenticationMiddleware", browser),
    ("allauth.account.middleware.AccountMiddleware", browser),
    ("django.contrib.messages.middleware.MessageMiddleware", browser),
    ("portal.account_security.middleware.SessionTimeoutMiddleware", browser),
    ("portal.account_security.middleware.MfaEnrolmentMiddleware", browser),
    ("django.middleware.clickjacking.XFrameOptionsMiddleware", every),
    ("django_prometheus.middleware.PrometheusAfterMiddleware", every),
]
MIDDLEWARE = [path for path, _browser_only in _middleware_layers]
#: The layers built for browsers, which portal.infra.lean skips on machine requests.
PORTAL_BROWSER_ONLY_MIDDLEWARE = frozenset(path for path, browser_only in _middleware_layers if browser_only)

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
(BASE_DIR / "var").mkdir(exist_ok=True)


def _database_url() -> str:
    """Return DATABASE_URL (set but blank counts as unset), refusing one that names no database engine."""
    url = env.str("DATABASE_URL", default="").strip() or f"sqlite:///{BASE_DIR / 'var' / 'portal.sqlite3'}"
    if urlsplit(url).scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(
            "DATABASE_URL must be a database URL such as postgresql://user:password@host:5432/portal "
            "(see docs/configuration.md)."
        )
    return url


DATABASES = {"default": env.db_url_config(_database_url())}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("PORTAL_DB_CONN_MAX_AGE", default=60, minimum=0))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast instead of hanging when PostgreSQL is unreachable.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("PORTAL_DB_CONNECT_TIMEOUT", default=3, minimum=1)
    )
    # Behind PgBouncer in transaction mode, the server-side cursors of `.iterator()` (the cron
    # jobs' sweeps) would break: Django reads whole result sets instead when this is set.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "PORTAL_DB_TRANSACTION_POOLING", default=False
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------


def _redis_url() -> str:
    """Return REDIS_URL, or "" when unset, refusing one Redis cannot connect to.

    A malformed URL would not stop start-up on its own: the cache would fail every call and
    the portal would run as if Redis were down for good.
    """
    url = env.str("REDIS_URL", default="").strip()
    if not url:
        return ""
    for server in re.split("[;,]", url):  # Django's RedisCache: the primary first, then replicas
        parts = urlsplit(server.strip())
        located = parts.path.strip("/") if parts.scheme == "unix" else parts.hostname
        if parts.scheme not in ("redis", "rediss", "unix") or not located:
            raise ImproperlyConfigured(
                "REDIS_URL must be redis://[:password@]host[:port][/db], rediss://… or unix:///path/to.sock "
                "(see docs/configuration.md)."
            )
    return url


REDIS_URL = _redis_url()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "portal.infra.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("PORTAL_CACHE_PREFIX", default="portal"),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "portal.infra.cache.PortalLocMemCache", "LOCATION": "portal"}}

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "portal.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# Account security with django-allauth (see docs/account-security.md): email login, no
# self-service signup (accounts come from invitations), MFA with TOTP, recovery codes and
# passkeys, and a list of one's sessions. Invitations prove the address, so no email round trip.
ACCOUNT_ADAPTER = "portal.account_security.adapters.PortalAccountAdapter"
ACCOUNT_FORMS = {
    "login": "portal.forms.PortalLoginForm",
    "change_password": "portal.forms.PortalChangePasswordForm",
}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
ACCOUNT_SESSION_REMEMBER = True
# Tell people by email when a second factor or their password changes.
ACCOUNT_EMAIL_NOTIFICATIONS = True
# Not "[<Host header>] ", allauth's default without django.contrib.sites.
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Identity Portal] "
ACCOUNT_LOGOUT_REDIRECT_URL = "login"
MFA_ADAPTER = "portal.account_security.adapters.PortalMFAAdapter"
# allauth's security-key forms, refusing a credential python-fido2 cannot parse (else a 500).
MFA_FORMS = {
    "add_webauthn": "portal.forms.PortalAddWebAuthnForm",
    "authenticate_webauthn": "portal.forms.PortalAuthenticateWebAuthnForm",
    "login_webauthn": "portal.forms.PortalLoginWebAuthnForm",
    "reauthenticate_webauthn": "portal.forms.PortalReauthenticateWebAuthnForm",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = env.str("PORTAL_MFA_ISSUER", default="Identity Portal")
MFA_RECOVERY_CODE_COUNT = 10
MFA_RECOVERY_CODES_SHOW_ONCE = True
MFA_ALLOW_UNVERIFIED_EMAIL = True
# Browsers allow WebAuthn on http://localhost; python-fido2 must be told so for `make run`.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = env.bool("PORTAL_WEBAUTHN_ALLOW_INSECURE_ORIGIN", default=DEBUG)
USERSESSIONS_TRACK_ACTIVITY = False  # portal.account_security.middleware records last-seen itself
# Step-up: sensitive actions need an authentication (password or second factor) this recent.
PORTAL_STEP_UP_SECONDS = env.int("PORTAL_STEP_UP_SECONDS", default=300, minimum=1)
ACCOUNT_REAUTHENTICATION_TIMEOUT = PORTAL_STEP_UP_SECONDS
# Sessions end after this long without a request (idle) and this long after sign-in (absolute).
PORTAL_SESSION_IDLE_SECONDS = env.int("PORTAL_SESSION_IDLE_SECONDS", default=60 * 60, minimum=1)
PORTAL_SESSION_ABSOLUTE_SECONDS = env.int("PORTAL_SESSION_ABSOLUTE_SECONDS", default=60 * 60 * 12, minimum=1)

# Failed logins pause sign-in per account and per client IP: allauth's own `login_failed` rate
# limit (every attempt counts, a successful one is given back; kept in the cache, so shared
# between app servers through Redis), with the portal's knobs and allauth's 10 per minute per IP.
# The message is PortalAccountAdapter's; PortalLoginView answers it with 429 and Retry-After.
PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT = env.int("PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT", default=5, minimum=1)
PORTAL_LOGIN_MAX_FAILURES_PER_IP = env.int("PORTAL_LOGIN_MAX_FAILURES_PER_IP", default=20, minimum=1)
PORTAL_LOGIN_LOCKOUT_SECONDS = env.int("PORTAL_LOGIN_LOCKOUT_SECONDS", default=900, minimum=1)
ACCOUNT_RATE_LIMITS = {
    "login_failed": (
        f"10/m/ip,{PORTAL_LOGIN_MAX_FAILURES_PER_IP}/{PORTAL_LOGIN_LOCKOUT_SECONDS}s/ip,"
        f"{PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT}/{PORTAL_LOGIN_LOCKOUT_SECONDS}s/key"
    ),
}
# Client IPs are read from X-Forwarded-For only when the direct peer is one of these proxies: each
# proxy's own address (a network is not one: behind an unlisted proxy every client would share its
# address, and its per-address limits).
PORTAL_TRUSTED_PROXIES = env.addresses("PORTAL_TRUSTED_PROXIES", networks=False)

# Rate limits (portal.infra.ratelimit, counted per minute in the shared cache; 0 switches one off).
# See docs/security.md.
PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE = env.int(
    "PORTAL_CLIENT_AUTH_FAILURES_PER_CLIENT_PER_MINUTE", default=20, minimum=0
)
PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE = env.int(
    "PORTAL_CLIENT_AUTH_FAILURES_PER_IP_PER_MINUTE", default=30, minimum=0
)
PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = env.int(
    "PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE", default=30, minimum=0
)
# API-key authentication may reuse what this process read from Redis (the key's snapshot, its
# last-used marker, the per-IP failure counter) less than this many seconds ago: a change made
# through another process is seen within it (docs/operations.md; 0 switches it off).
PORTAL_API_KEY_MEMO_SECONDS = env.float("PORTAL_API_KEY_MEMO_SECONDS", default=0.25, minimum=0)
PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = env.int("PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE", default=600, minimum=0)
PORTAL_SECRET_SCANNING_FAILURES_PER_IP_PER_MINUTE = env.int(
    "PORTAL_SECRET_SCANNING_FAILURES_PER_IP_PER_MINUTE", default=30, minimum=0
)
# A credential's own rate limit (credentials.policy) when the cache cannot count: serve the
# request (open, the default: the identity layer stays up) or answer 429 (closed).
PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN = env.bool("PORTAL_CREDENTIAL_RATE_LIMIT_FAIL_OPEN", default=True)
# Usage metering (credentials.usage): counted in process, added to the cache at most every
# PORTAL_USAGE_FLUSH_SECONDS, rolled up into the database by `rollup_usage` (and, under DEBUG,
# in-process at most every PORTAL_USAGE_ROLLUP_SECONDS).
PORTAL_USAGE_METERING = env.bool("PORTAL_USAGE_METERING", default=True)
PORTAL_USAGE_FLUSH_SECONDS = env.float("PORTAL_USAGE_FLUSH_SECONDS", default=5.0, minimum=0)
PORTAL_USAGE_ROLLUP_SECONDS = env.float("PORTAL_USAGE_ROLLUP_SECONDS", default=30.0, minimum=0)
# Last-used writes of every kind (credentials.last_used): held in process and written with one
# UPDATE per kind at the end of a request at most every PORTAL_LAST_USED_FLUSH_SECONDS (0: at
# the end of every request), by a timer when the process is idle, and at exit.
PORTAL_LAST_USED_FLUSH_SECONDS = env.float("PORTAL_LAST_USED_FLUSH_SECONDS", default=5.0, minimum=0)

PORTAL_INVITATION_TTL_HOURS = env.int("PORTAL_INVITATION_TTL_HOURS", default=72, minimum=1)

# --- Credentials and tokens -----------------------------------------------------------------
PORTAL_ISSUER = env.str("PORTAL_ISSUER", default="").strip().rstrip("/")
if not PORTAL_ISSUER:
    # Tokens, the OAuth metadata and e-mailed links (PORTAL_BASE_URL) all name it: outside
    # DEBUG the development server's address is never a fallback.
    if not DEBUG:
        raise ImproperlyConfigured(
            "PORTAL_ISSUER is not set. It is required when DEBUG is off, e.g. https://portal.example.com."
        )
    PORTAL_ISSUER = _DEV_SERVER_URL
PORTAL_DEFAULT_AUDIENCE = env.absolute_uri("PORTAL_DEFAULT_AUDIENCE", default=f"{PORTAL_ISSUER}/api")
# Versioned peppers for keyed digests of API keys, client secrets and invitation tokens:
# "id:secret[,id:secret…]". The first entry signs new digests; the others still verify.
PORTAL_PEPPERS = _required_secret("PORTAL_PEPPERS", _DEV_PEPPERS, min_length=34)
if not DEBUG:
    # Each pepper, not only the whole list: the first one makes every new digest.
    for _item in (part.strip() for part in PORTAL_PEPPERS.split(",") if part.strip()):
        _pepper = _item.partition(":")[2]
        if len(_pepper) < 32 or len(set(_pepper)) < 8 or "insecure" in _pepper:
            raise ImproperlyConfigured(
                "PORTAL_PEPPERS holds a weak pepper: give each id:secret a secret of at least 32 random "
                "characters (see docs/configuration.md)."
            )
# The rule of an id (what the pepper_id columns hold, each id once) is portal.infra.crypto's, which
# reads the same value at run time: a list it refuses would fail every credential (a 500).
parse_peppers(PORTAL_PEPPERS)
PORTAL_SIGNING_KEY_ENCRYPTION_KEY = _required_secret(
    "PORTAL_SIGNING_KEY_ENCRYPTION_KEY", _DEV_SIGNING_KEY_ENCRYPTION_KEY, min_length=44
)
# Previous encryption keys, comma-separated: still accepted for decryption while
# `manage.py reencrypt_secrets` moves stored secrets to the current key; then remove them.
PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = env.list("PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY", default=[])
# Whatever DEBUG says: a key Fernet refuses fails every token, webhook signature and TOTP sign-in.
for _name, _keys in (
    ("PORTAL_SIGNING_KEY_ENCRYPTION_KEY", [PORTAL_SIGNING_KEY_ENCRYPTION_KEY]),
    ("PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEY", PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS),
):
    try:
        check_fernet_keys(_keys)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"{_name} holds a value that is not a Fernet key (32 url-safe base64-encoded bytes); "
            "docs/configuration.md shows how to generate one."
        ) from None
# DRF authentication classes for machines, tried in order by /api/v1/whoami and the
# machine-facing APIs. Each yields a portal.principal.Principal.
PORTAL_MACHINE_AUTHENTICATION_CLASSES: list[str] = [
    "credentials.api_keys.authentication.ApiKeyAuthentication",
    "tokens.protocol.authentication.AccessTokenAuthentication",
]
# Set but blank: live. Anything but live or test would refuse every key created without an environment.
PORTAL_API_KEY_ENVIRONMENT = env.str("PORTAL_API_KEY_ENVIRONMENT", default="").strip() or "live"
if PORTAL_API_KEY_ENVIRONMENT not in ("live", "test"):
    raise ImproperlyConfigured(
        f"PORTAL_API_KEY_ENVIRONMENT must be live or test, not {PORTAL_API_KEY_ENVIRONMENT[:40]!r}."
    )
# GitHub secret scanning partner alerts (POST /api/v1/secret-scanning/reports): GitHub's public
# keys document ({"public_keys": [...]}, from api.github.com/meta/public_keys/secret_scanning),
# inline or as a file path. Neither set: the endpoint answers 404. See docs/leak-reports.md.
PORTAL_SECRET_SCANNING_PUBLIC_KEYS = env.str("PORTAL_SECRET_SCANNING_PUBLIC_KEYS", default="")
PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE = env.str("PORTAL_SECRET_SCANNING_PUBLIC_KEYS_FILE", default="")

# --- Lifecycle webhooks (credentials.webhooks, docs/webhooks.md) ------------------------------
# http:// and loopback destinations for localhost/127.0.0.1/[::1] only: development and tests.
PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = env.bool("PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST", default=DEBUG)
PORTAL_WEBHOOK_TIMEOUT_SECONDS = env.int("PORTAL_WEBHOOK_TIMEOUT_SECONDS", default=5, minimum=1)
PORTAL_WEBHOOK_MAX_ATTEMPTS = env.int("PORTAL_WEBHOOK_MAX_ATTEMPTS", default=12, minimum=1)
PORTAL_WEBHOOK_RETRY_BASE_SECONDS = env.int("PORTAL_WEBHOOK_RETRY_BASE_SECONDS", default=30, minimum=1)
PORTAL_WEBHOOK_RETRY_MAX_SECONDS = env.int("PORTAL_WEBHOOK_RETRY_MAX_SECONDS", default=6 * 60 * 60, minimum=1)

# --- Workload identity federation (tokens.federation, docs/m2m.md#workload-identity-federation) --
# http:// issuers on localhost/127.0.0.1/[::1] only: development and the tests' local issuer.
PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST = env.bool(
    "PORTAL_FEDERATION_ALLOW_INSECURE_LOCALHOST", default=DEBUG
)
# Each fetch of discovery or a JWKS (connection and each read; the whole exchange at most 3x).
PORTAL_FEDERATION_TIMEOUT_SECONDS = env.int("PORTAL_FEDERATION_TIMEOUT_SECONDS", default=3, minimum=1)
# How long an issuer's keys are cached, and how often at most an unknown kid may refresh them.
PORTAL_FEDERATION_KEYS_CACHE_SECONDS = env.int(
    "PORTAL_FEDERATION_KEYS_CACHE_SECONDS", default=3600, minimum=1
)
PORTAL_FEDERATION_KEYS_REFRESH_SECONDS = env.int(
    "PORTAL_FEDERATION_KEYS_REFRESH_SECONDS", default=60, minimum=1
)

# --- OAuth 2.0 M2M (tokens app) -------------------------------------------------------------
# The application model is swapped before the first migration (tokens 0001 runs before
# oauth2_provider 0001). Client secrets live in tokens.ClientSecret as keyed digests; access
# tokens are RFC 9068 JWTs that are never stored (see docs/m2m.md).
OAUTH2_PROVIDER_APPLICATION_MODEL = "tokens.M2MApplication"
OAUTH2_PROVIDER = {
    "OAUTH2_SERVER_CLASS": "tokens.protocol.oauth.M2MServer",
    "OAUTH2_VALIDATOR_CLASS": "tokens.protocol.oauth.M2MValidator",
    "ACCESS_TOKEN_GENERATOR": "tokens.signing.issuing.generate_access_token",
    "APPLICATION_ADMIN_CLASS": "tokens.clients.admin.M2MApplicationAdmin",
    "OAUTH2_GRANT_TYPES_SUPPORTED": [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "client_secret_post"],
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    # No authorisation endpoint or refresh tokens exist here; the strict settings keep it so.
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}
# Longest lifetime of a token a gateway obtains by exchanging an API key (RFC 8693, see
# docs/m2m.md); the gateway application's own lifetime applies when shorter. Services that
# validate offline accept a revoked key's tokens for at most this long.
PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS = env.int(
    "PORTAL_EXCHANGE_TOKEN_LIFETIME_SECONDS", default=300, minimum=1, maximum=86400
)
# The shared client snapshot (tokens.clients.snapshot): on with a shared cache (REDIS_URL),
# never with the per-process one; false switches it off (docs/performance.md).
PORTAL_CLIENT_SNAPSHOT = env.bool("PORTAL_CLIENT_SNAPSHOT", default=None)
# Seconds a process trusts its loaded signing key before re-checking which key is active
# (a rotation reaches every app server within twice this interval: the shared hint of the
# active key lives as long).
PORTAL_SIGNING_KEY_REFRESH_SECONDS = env.int("PORTAL_SIGNING_KEY_REFRESH_SECONDS", default=5, minimum=1)
# Cache-Control max-age of the JWKS. A new key is published the moment it is created, and
# the previous key stays published for the longest token lifetime after rotation.
PORTAL_JWKS_MAX_AGE_SECONDS = env.int("PORTAL_JWKS_MAX_AGE_SECONDS", default=300, minimum=1)

# --- Email ----------------------------------------------------------------------------------
try:
    EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
except (ImproperlyConfigured, ValueError):
    # django-environ's message names neither the variable nor, for a bad port, what is wrong. The
    # URL is not repeated (it usually holds the mail server's password): its scheme only.
    _scheme = env.str("EMAIL_URL", default="").partition(":")[0][:20]
    raise ImproperlyConfigured(
        f"EMAIL_URL cannot be used (scheme {_scheme!r}, or a port that is no number): give an email URL "
        "such as smtp+tls://user:password@smtp.example.com:587, or consolemail:// "
        "(see docs/configuration.md)."
    ) from None
if EMAIL_CONFIG.get("EMAIL_BACKEND") == "django.core.mail.backends.console.EmailBackend":
    # On stderr: a management command's stdout is its output (`--json` stays one document).
    EMAIL_CONFIG["EMAIL_BACKEND"] = "portal.infra.mail.StderrConsoleBackend"
vars().update(EMAIL_CONFIG)
# Seconds an SMTP connection may wait on the mail server (Django's default is no limit: a server
# that accepts the connection and never answers would hang a cron run, or a request, for good).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10, minimum=1, maximum=300)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Identity Portal <no-reply@portal.example>")
# Set but blank (as .env.example ships it) is the default too.
PORTAL_BASE_URL = (env.str("PORTAL_BASE_URL", default="") or PORTAL_ISSUER).rstrip("/")

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
# Where `collectstatic` gathers the files whitenoise serves (outside DEBUG, from a hashed manifest).
STATIC_ROOT = Path(env.str("PORTAL_STATIC_ROOT", default="") or BASE_DIR / "var" / "staticfiles")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Every refusal carries a machine-readable `code` beside `detail` (docs/security.md).
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Identity Portal API",
    "DESCRIPTION": (
        "Manage and verify machine credentials: API keys and OAuth 2.0 M2M applications.\n\n"
        "A credential acts for its owner: its scopes are bounded by its owner's current role. "
        'Every refusal is `{"detail": …, "code": …}` with a machine-readable code '
        "(`not_manager`, `not_owner`, `insufficient_scope`, `exceeds_credential`, `owner_not_member`, "
        "`session_required`, `step_up_required`, `own_request`, `four_eyes`, `authentication_failed`, "
        "`throttled`…); see docs/security.md."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One enum for a credential's environment (API keys, the verify answer, whoami); M2M
    # applications' statuses and their secrets' and keys' states named apart from API keys'.
    "ENUM_NAME_OVERRIDES": {
        "EnvironmentEnum": "credentials.api_keys.models.Environment",
        "ApiKeyStatusEnum": "credentials.governance.models.CredentialState",
        "M2MAppStatusEnum": "credentials.governance.models.CredentialStatus",
        "ClientCredentialStatusEnum": "tokens.clients.serializers.CREDENTIAL_STATES",
        "NewApiKeysEnum": "credentials.governance.models.NewApiKeys",
    },
    # The OAuth endpoints are plain Django views; tokens.openapi describes them. portal.openapi
    # declares the refusals (401, 403, 404; 400 for input) every organisation endpoint can give.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tokens.openapi.add_oauth_endpoints",
        "portal.openapi.add_organization_refusals",
    ],
}

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): no inline script or style anywhere; pages may not be framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Bound request bodies: every form and JSON body the portal accepts is small.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("PORTAL_MAX_REQUEST_BYTES", default=256 * 1024, minimum=1)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("PORTAL_SESSION_COOKIE_AGE", default=60 * 60 * 12, minimum=1)
CSRF_COOKIE_HTTPONLY = True
if not DEBUG:
    # Behind a TLS-terminating proxy, set SECURE_PROXY_SSL_HEADER via PORTAL_PROXY_SSL_HEADER.
    SECURE_SSL_REDIRECT = env.bool("PORTAL_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("PORTAL_HSTS_SECONDS", default=60 * 60 * 24 * 365, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("PORTAL_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("PORTAL_HSTS_PRELOAD", default=False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # __Host- cookies are bound to the exact host, HTTPS only, path "/".
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    if env.bool("PORTAL_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The HSTS preload warning is a deliberate operator choice, not a settings fix.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("PORTAL_LOG_LEVEL", default="").strip().upper() or "INFO"
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(
        "PORTAL_LOG_LEVEL must be a logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
# "plain" (human-readable lines) or "json" (one object per line, for log shippers).
LOG_FORMAT = env.str("PORTAL_LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("PORTAL_LOG_FORMAT must be plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "portal.infra.request_context.RequestIdLogFilter"},
        "redact": {"()": "portal.infra.log_filters.RedactCredentials"},
        "no_client_error_traceback": {"()": "portal.infra.log_filters.ClientErrorsWithoutTraceback"},
    },
    "formatters": {
        "plain": {
            "()": "portal.infra.log_filters.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s] %(message)s",
        },
        "json": {"()": "portal.infra.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            # A 4xx is one line: no traceback, whichever logger wrote it (django.request, or
            # django.security.DisallowedHost for a foreign Host header, which anyone can send).
            "filters": ["request_id", "redact", "no_client_error_traceback"],
        },
        "null": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Every line once, through the root handler: Django's default config gives "django" its own
        # console handler (DEBUG), which printed each line a second time on its way to the root.
        "django": {"handlers": [], "propagate": True},
        "django.db.backends": {"level": "INFO"},
        # These log the path of every refused request; a credential in a URL must not reach the log.
        "django.request": {"filters": ["redact", "no_client_error_traceback"]},
        # runserver's own request line repeats portal.access (one line per request, with its id).
        "django.server": {"handlers": ["null"], "propagate": False},
        # oauthlib logs whole token responses at DEBUG; never let them reach the log.
        "oauthlib": {"level": "WARNING"},
    },
}

# --- Metrics (Prometheus, /metrics) ---------------------------------------------------------
# Who may read /metrics: client IPs or networks (resolved through PORTAL_TRUSTED_PROXIES), or
# anyone presenting `Authorization: Bearer <PORTAL_METRICS_TOKEN>`. Both empty: nobody.
PORTAL_METRICS_ALLOWED_IPS = env.addresses("PORTAL_METRICS_ALLOWED_IPS", networks=True)
PORTAL_METRICS_TOKEN = env.str("PORTAL_METRICS_TOKEN", default="")

# oauthlib refuses plain-HTTP URLs; `make run` serves http://127.0.0.1:8000, so only
# development mode may allow it.
if DEBUG:
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
