from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotation", "0003_draft_model_version_autosave_draft_revision_author_and_more")]

    operations = [
        migrations.AddField(
            model_name="item",
            name="status_before_lease",
            field=models.CharField(blank=True, max_length=20),
        ),
    ]
