from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tokens', '0014_m2m_app_may_report_client_ip'),
    ]

    operations = [
        migrations.AlterField(
            model_name='signingkey',
            name='status',
            field=models.CharField(choices=[('active', 'Active'), ('next', 'Published, next'), ('retired', 'Retired')], default='active', max_length=16, verbose_name='status'),
        ),
        migrations.AddConstraint(
            model_name='signingkey',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'next')), fields=('status',), name='signing_key_one_next'),
        ),
    ]
