"""Settings of the benchmark peers: stock django-oauth-toolkit and djangorestframework-api-key.

One project, three variants chosen by PEER_VARIANT, each served by its own gunicorn with its own
database:
- ``dot_stock``: django-oauth-toolkit exactly as installed — client secrets hashed with Django's
  default password hasher (PBKDF2), opaque tokens stored in the database.
- ``dot_fast``: the same with CLIENT_SECRET_HASHER set to a fast registered hasher
  (``peers.hashers.FastSHA256Hasher``) — the best django-oauth-toolkit can do.
- ``apikey``: djangorestframework-api-key's ``HasAPIKey`` on ``GET /api/v1/whoami``.

The middleware and apps are what ``django-admin startproject`` gives, minus the admin, so the
peers pay the same framework costs as any real project (and as Identity Portal).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

PEER_VARIANT = env.str("PEER_VARIANT", default="dot_stock")
if PEER_VARIANT not in {"dot_stock", "dot_fast", "apikey"}:
    raise ValueError(f"PEER_VARIANT must be dot_stock, dot_fast or apikey, not {PEER_VARIANT!r}")

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1"])
# The load generator stands in for a TLS-terminating proxy on loopback.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "rest_framework_api_key",
    "oauth2_provider",
    "peers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "peers.urls"
WSGI_APPLICATION = "peers.wsgi.application"
TEMPLATES = []

DATABASES = {"default": env.db("DATABASE_URL")}
# Same persistent-connection policy as Identity Portal's default (PORTAL_DB_CONN_MAX_AGE=60).
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"

REST_FRAMEWORK = {"DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]}

OAUTH2_PROVIDER = {"SCOPES": {"orders:read": "Read orders"}, "DEFAULT_SCOPES": ["orders:read"]}
if PEER_VARIANT == "dot_fast":
    # Register the fast hasher after Django's defaults: human passwords keep PBKDF2, and
    # django-oauth-toolkit hashes client secrets with the fast one.
    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
        "peers.hashers.FastSHA256Hasher",
    ]
    OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "fast_sha256"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
