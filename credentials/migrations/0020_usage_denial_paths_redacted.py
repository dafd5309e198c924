from django.db import migrations

from portal.infra.log_filters import one_line, redact


def masked(apps, schema_editor):
    """Mask what clients put in the paths of refused uses kept before the recorder masked them (a key
    pasted where an id goes was stored, and shown on the credential's page)."""
    UsageDenial = apps.get_model("credentials", "UsageDenial")
    for row in UsageDenial.objects.only("pk", "endpoint").iterator():
        endpoint = one_line(redact(row.endpoint))[:200]
        if endpoint != row.endpoint:
            UsageDenial.objects.filter(pk=row.pk).update(endpoint=endpoint)


class Migration(migrations.Migration):
    dependencies = [
        ("credentials", "0019_api_key_lineage_set"),
    ]

    operations = [
        migrations.RunPython(masked, migrations.RunPython.noop, elidable=True),
    ]
