"""Keep allauth's address rows to the account's own address: a replaced one must stop working.

allauth stores an `EmailAddress` row for the account's address when a password reset is asked for
or a reset link is opened (`EmailAwarePasswordResetTokenGenerator` syncs it), and finds accounts by
those rows as well as by `User.email`, for password reset and for sign-in. The portal keeps one
address per account, so a row for any other address is a former address still opening the account.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.db.models.signals import post_save
from django.dispatch import receiver

from portal.models import User


def user_replaced_addresses_delete(*, user: User) -> int:
    """Delete the user's allauth address rows for any address but `user.email` (ignoring case).

    Return how many were deleted.
    """
    deleted, _ = EmailAddress.objects.filter(user=user).exclude(email__iexact=user.email).delete()
    return deleted


@receiver(post_save, sender=User, dispatch_uid="portal-user-replaced-addresses")
def _forget_replaced_addresses(sender, instance: User, created: bool, update_fields=None, **kwargs) -> None:
    # Every path that changes the address (the admin's form, a service, the shell) saves the user;
    # a new account has no rows yet, and a save naming its fields without `email` changes none.
    if created or (update_fields is not None and "email" not in update_fields):
        return
    user_replaced_addresses_delete(user=instance)
