"""A snapshot sample keeps its reply turn's other keys (tool calls), so a reply that calls a tool trains
as one (issue 13)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0004_snapshot_conversations"),
    ]

    operations = [
        migrations.AddField(
            model_name="snapshotsample", name="reply_extra", field=models.JSONField(blank=True, default=dict)
        ),
    ]
