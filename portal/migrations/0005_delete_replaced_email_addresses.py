"""Delete allauth address rows left behind for an account's former address.

Until portal.account_security.addresses deleted them on every change of address, a row allauth had
stored for an address (at a password-reset request) outlived the change: the former address still
received reset links for the account and still signed in to it.
"""

from django.db import migrations
from django.db.models import F
from django.db.models.functions import Lower


def delete_replaced_addresses(apps, schema_editor):
    EmailAddress = apps.get_model("account", "EmailAddress")
    EmailAddress.objects.annotate(address=Lower("email"), current=Lower("user__email")).exclude(
        address=F("current")
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("account", "0009_emailaddress_unique_primary_email"),
        ("portal", "0004_user_email_case"),
    ]

    operations = [
        migrations.RunPython(delete_replaced_addresses, migrations.RunPython.noop, elidable=True),
    ]
