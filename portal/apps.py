"""App configuration for the portal project room."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from django.apps import AppConfig

from portal.infra.cache import cache_is_down


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        # Imported here: these modules import models, which exist once the app registry is ready.
        from allauth.core.internal import ratelimit as allauth_ratelimit
        from allauth.mfa.totp.internal import auth as allauth_totp

        from portal import checks  # noqa: F401  (registers system checks)
        from portal.account_security import addresses, events  # noqa: F401  (connect their receivers)
        from portal.account_security.totp import totp_validate_code
        from portal.services.encryption import encrypted_store_register, mfa_secrets_reencrypt

        encrypted_store_register("mfa", unit="MFA authenticator(s)", reencrypt=mfa_secrets_reencrypt)
        # allauth's rate limits (failed sign-ins, step-up, password reset, MFA) take a lock with
        # `cache.add` around each count, and refuse the request (429) when it cannot be had within
        # a second. While Redis is down ResilientRedisCache answers every `add` with False (the
        # replay caches rely on that), so every sign-in would be refused. allauth has no adapter
        # hook for this; its rate-limit functions look `cache_lock` up in their module at each
        # call, so it is wrapped there, once (idempotent: a second `ready()` keeps the first wrap).
        if not getattr(allauth_ratelimit.cache_lock, "fails_open_while_cache_is_down", False):
            allauth_ratelimit.cache_lock = cache_lock_failing_open(allauth_ratelimit.cache_lock)
        # allauth marks an authenticator-app code used with `cache.add`, answered False while Redis
        # is down: every right code would be refused. The portal records the last accepted time
        # step in the database instead (portal.account_security.totp). allauth has no adapter hook
        # for this; its forms call `validate_code` on the TOTP class, replaced there (idempotent).
        allauth_totp.TOTP.validate_code = totp_validate_code


def cache_lock_failing_open(
    lock: Callable[[str], AbstractContextManager[bool]],
) -> Callable[[str], AbstractContextManager[bool]]:
    """Return allauth's `cache_lock`, answering "locked" while the cache says it is down.

    The limits then count nothing (the cache holds no history meanwhile and keeps nothing): sign-in
    throttles are off during a Redis outage and count afresh when it ends (docs/operations.md).
    A request that meets the outage first waits out allauth's one-second lock wait once.
    """

    @contextmanager
    def failing_open(cache_key: str) -> Iterator[bool]:
        if cache_is_down():
            yield True
            return
        with lock(cache_key) as locked:
            yield locked or cache_is_down()

    failing_open.fails_open_while_cache_is_down = True
    return failing_open
