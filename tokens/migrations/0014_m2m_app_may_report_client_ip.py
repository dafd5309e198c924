from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tokens', '0013_m2m_app_token_quota'),
    ]

    operations = [
        migrations.AddField(
            model_name='m2mapplication',
            name='may_report_client_ip',
            field=models.BooleanField(default=False, help_text="Staff only: a gateway trusted to report, as `client_ip` at token exchange, the address a customer's API key was presented from; the key's IP allowlist is checked against it. Without this mark the key's allowlist is checked against the gateway's own address.", verbose_name='may report client IPs'),
        ),
    ]
