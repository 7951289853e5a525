"""Snapshot samples hold conversations (issue 13); `context` was always the system prompt there."""

from django.db import migrations, models


def fill_messages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE training_snapshotsample SET messages = "
            "jsonb_build_array(jsonb_build_object('role', 'user', 'content', input))"
        )
        return
    Sample = apps.get_model("training", "SnapshotSample")
    for sample in Sample.objects.only("pk", "input").iterator(chunk_size=2000):
        sample.messages = [{"role": "user", "content": sample.input}]
        sample.save(update_fields=["messages"])


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0003_training_runs"),
    ]

    operations = [
        migrations.RenameField(model_name="snapshotsample", old_name="context", new_name="system"),
        migrations.AddField(model_name="snapshotsample", name="messages", field=models.JSONField(default=list)),
        migrations.AddField(
            model_name="snapshotsample", name="tools", field=models.JSONField(blank=True, default=list)
        ),
        migrations.RunPython(fill_messages, migrations.RunPython.noop),
    ]
