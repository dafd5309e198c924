"""django-allauth adapters: closed signup, the portal's client IP, encrypted MFA secrets."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import lazy
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from portal.account_security.events import step_up_failed
from portal.infra.crypto import SecretCipher, encryption_key_hmac
from portal.infra.net import client_ip
from portal.stepup import is_recently_authenticated


def _pause_in_words(seconds: int) -> str:
    """Return how long a pause of `seconds` lasts: whole minutes rounded up, seconds under a minute."""
    if seconds < 60:
        return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}
    minutes = -(-seconds // 60)
    return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}


def _throttled_message() -> str:
    return gettext(
        "Too many failed sign-in attempts. For your security, sign-in is paused for a while; "
        "try again in %(pause)s or reset your password."
    ) % {"pause": _pause_in_words(settings.PORTAL_LOGIN_LOCKOUT_SECONDS)}


#: allauth's `login_failed` rate limit (ACCOUNT_RATE_LIMITS) speaks with this message. Lazy: it names
#: PORTAL_LOGIN_LOCKOUT_SECONDS as it is when the page is rendered, like the 429's Retry-After.
THROTTLED_MESSAGE = lazy(_throttled_message, str)()
INVALID_LOGIN_MESSAGE = _("That email and password do not match an account. Check both and try again.")


@dataclass(frozen=True)
class PortalSite:
    """What allauth's e-mails call `current_site`: the portal, never the request's Host header."""

    name: str
    domain: str


def portal_site() -> PortalSite:
    return PortalSite(name="Identity Portal", domain=urlsplit(settings.PORTAL_BASE_URL).netloc)


class PortalAccountAdapter(DefaultAccountAdapter):
    """Accounts come from invitations and the admin, never from an open signup form."""

    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "too_many_login_attempts": THROTTLED_MESSAGE,
        "email_password_mismatch": INVALID_LOGIN_MESSAGE,
    }

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def get_client_ip(self, request: HttpRequest) -> str:
        # The same rule as the rest of the portal: X-Forwarded-For only from trusted proxies.
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def is_reauthentication_required(self, *, app: str, **kwargs) -> bool:
        # allauth's own sensitive pages (adding or removing a second factor) follow the same
        # rule as the portal's step-up: any authentication within PORTAL_STEP_UP_SECONDS counts,
        # sign-in included.
        request = allauth_context.request
        if request is not None and request.user.is_authenticated and is_recently_authenticated(request):
            return False
        return super().is_reauthentication_required(app=app, **kwargs)

    def get_reauthentication_methods(self, user) -> list[dict]:
        # An account with a second factor steps up with it: the password alone, which whoever
        # holds a stolen session may have too, is then no fresh proof (its page sends on to the
        # factor's). Without a second factor the password is the proof.
        methods = super().get_reauthentication_methods(user)
        if any(method["id"].startswith("mfa_reauthenticate") for method in methods):
            methods = [method for method in methods if method["id"] != "reauthenticate"]
        return methods

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        # Links in e-mails start with PORTAL_BASE_URL (docs/configuration.md); the greeting names
        # the portal. allauth's default takes both from the request's Host, an app server's own
        # name behind a proxy.
        super().send_mail(template_prefix, email, {**context, "current_site": portal_site()})

    def get_reset_password_from_key_url(self, key: str) -> str:
        path = reverse("account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"})
        return settings.PORTAL_BASE_URL + path.replace("UID-KEY", quote(key))

    def send_notification_mail(self, template_prefix, user, context=None, email=None) -> None:
        # Notify the account's own address. allauth may keep an EmailAddress row for it (its reset
        # tokens store one), never for another: portal.account_security.addresses deletes the row
        # of a replaced address, and allauth's own e-mail page is switched off (404).
        # The MFA adapter asks for this adapter without the request; the mail names the client IP.
        if self.request is None:
            self.request = allauth_context.request
        if self.request is None:
            return
        super().send_notification_mail(template_prefix, user, context, email or user.email)

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials) -> str:
        # The account's failed-sign-in count (`login_failed`, per key). allauth prefixes the
        # address with the current site's domain, which without django.contrib.sites is the
        # request's Host header: each allowed host, or another port, would get a fresh budget.
        # (A private allauth hook: tests/portal/test_login_lockout.py fails if it is renamed.)
        # str.lower() is also how UserManager.get_by_natural_key compares addresses: every spelling
        # that signs in to an account shares this key (tests/portal/test_sign_in_spelling.py).
        return (credentials.get("email") or credentials.get("username") or "").lower()

    def reauthenticate(self, user, password: str) -> bool:
        # Users need no allauth EmailAddress row: check the password of the signed-in user. A
        # wrong password spends the account's failed-sign-in budget like a sign-in does (allauth's
        # own `authenticate`): a stolen session cannot guess at step-up without limit.
        self.request = self.request or allauth_context.request
        self.pre_authenticate(self.request, email=user.email)  # a form error once the budget is spent
        ok = bool(password) and user.check_password(password)
        if ok:
            self._rollback_login_failed_rl_usage()
        else:
            step_up_failed(user=user, method="password")
        return ok


#: TOTP secrets and recovery-code seeds, under a key of their own derived from the encryption
#: key the portal already requires; previous keys still decrypt during a key change.
MFA_CIPHER = SecretCipher(label="MFA secrets", derive=encryption_key_hmac(b"identity-portal mfa secrets v1"))


class PortalMFAAdapter(DefaultMFAAdapter):
    """Encrypt MFA secrets at rest and name the TOTP issuer after the portal."""

    def encrypt(self, text: str) -> str:
        return MFA_CIPHER.encrypt(text.encode()).decode()

    def decrypt(self, encrypted_text: str) -> str:
        return MFA_CIPHER.decrypt(encrypted_text.encode()).decode()
