"""A human round may be pairwise (issue 16): the round's mode, and each prompt's compare task (a Pair)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0005_preferences"),
        ("training", "0006_modelversion_backend"),
    ]

    operations = [
        migrations.AddField(
            model_name="humanevalpair",
            name="pair",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="review.pair",
            ),
        ),
        migrations.AddField(
            model_name="humanevalround",
            name="mode",
            field=models.CharField(
                choices=[
                    ("rubric", "Rubric scores"),
                    ("pairwise", "Pairwise: candidate against deployed, blind"),
                    ("both", "Rubric scores and pairwise"),
                ],
                default="rubric",
                max_length=10,
            ),
        ),
    ]
