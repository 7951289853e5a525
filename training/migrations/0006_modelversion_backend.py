"""A model version generates in-process (`local`, every existing version) or on an OpenAI-compatible
server (`openai`): the server's URL, the model name requests ask for, a write-only API key and options
(issue 15). An `openai` version may have no local base model."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0005_snapshotsample_reply_extra"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="backend",
            field=models.CharField(
                choices=[("local", "In-process (transformers)"), ("openai", "OpenAI-compatible server")],
                default="local",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="modelversion", name="server_url", field=models.CharField(blank=True, max_length=500)
        ),
        migrations.AddField(
            model_name="modelversion", name="server_model", field=models.CharField(blank=True, max_length=200)
        ),
        migrations.AddField(
            model_name="modelversion",
            name="server_api_key",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="server_options",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="modelversion",
            name="base_model",
            field=models.CharField(blank=True, help_text="A local Hugging Face model directory.", max_length=500),
        ),
    ]
