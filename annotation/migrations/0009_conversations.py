"""Items hold conversations (issue 13): the old shape, one prompt, becomes a conversation of one user turn.

`context` is renamed `system` (it always was the system prompt where imports and exports read it), and
`messages` is filled from `input`, so no item changes meaning and none loses a field. On PostgreSQL,
`metadata` gets a GIN index (jsonb_path_ops) for containment filters (`metadata @> {"category": "it"}`);
SQLite has no such index and filters by scanning.
"""

from django.db import migrations, models

GIN_INDEX = "item_metadata_gin"


def fill_messages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE annotation_item SET messages = "
            "jsonb_build_array(jsonb_build_object('role', 'user', 'content', input))"
        )
        return
    Item = apps.get_model("annotation", "Item")
    batch = []
    for item in Item.objects.only("pk", "input").iterator(chunk_size=2000):
        item.messages = [{"role": "user", "content": item.input}]
        batch.append(item)
        if len(batch) == 2000:
            Item.objects.bulk_update(batch, ["messages"])
            batch = []
    Item.objects.bulk_update(batch, ["messages"])


def metadata_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX {GIN_INDEX} ON annotation_item USING gin (metadata jsonb_path_ops)"
        )


def metadata_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {GIN_INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0008_project_training_settings"),
    ]

    operations = [
        migrations.RenameField(model_name="item", old_name="context", new_name="system"),
        migrations.AddField(model_name="item", name="messages", field=models.JSONField(default=list)),
        migrations.AddField(model_name="item", name="tools", field=models.JSONField(blank=True, default=list)),
        migrations.AddField(
            model_name="item", name="reference_extra", field=models.JSONField(blank=True, default=dict)
        ),
        migrations.AddField(model_name="item", name="metadata", field=models.JSONField(blank=True, default=dict)),
        migrations.AddField(
            model_name="revision", name="turn_edits", field=models.JSONField(blank=True, default=dict)
        ),
        migrations.AddField(
            model_name="autosave", name="turn_edits", field=models.JSONField(blank=True, default=dict)
        ),
        migrations.AddField(
            model_name="project",
            name="edit_all_assistant_turns",
            field=models.BooleanField(
                default=False,
                help_text="Let people edit the earlier assistant turns of a conversation too, not only the last one.",
                verbose_name="edit every assistant turn",
            ),
        ),
        migrations.RunPython(fill_messages, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(metadata_index, metadata_index_drop),
    ]
