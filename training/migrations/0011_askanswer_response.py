import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0005_preferences"),
        ("training", "0010_question_embedding"),
    ]

    operations = [
        migrations.AddField(
            model_name="askanswer",
            name="response",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="ask_answers",
                to="review.response",
            ),
        ),
    ]
