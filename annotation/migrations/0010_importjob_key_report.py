"""Import jobs say what the file was read as and where each of its keys went (issue 13)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0009_conversations"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="detected_format",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AddField(
            model_name="importjob",
            name="key_report",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
