"""Responses answer conversations (issue 13): the old shape becomes a conversation of one user turn."""

from django.db import migrations, models


def fill_messages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE review_response SET messages = "
            "jsonb_build_array(jsonb_build_object('role', 'user', 'content', input))"
        )
        return
    Response = apps.get_model("review", "Response")
    for response in Response.objects.only("pk", "input").iterator(chunk_size=2000):
        response.messages = [{"role": "user", "content": response.input}]
        response.save(update_fields=["messages"])


class Migration(migrations.Migration):

    dependencies = [
        ("review", "0003_response_closed_at"),
    ]

    operations = [
        migrations.AddField(model_name="response", name="system", field=models.TextField(blank=True)),
        migrations.AddField(model_name="response", name="messages", field=models.JSONField(default=list)),
        migrations.RunPython(fill_messages, migrations.RunPython.noop),
    ]
