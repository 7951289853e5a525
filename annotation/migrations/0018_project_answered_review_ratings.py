from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0017_project_adjudication_overlap"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="answered_review_ratings",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "A sampled answer also goes to the rating queue; until people approve its item, its rubric "
                    "scores say whether it was acceptable (a normalised weighted score of 0.75 or more)."
                ),
                verbose_name="raters also score sampled answers",
            ),
        ),
    ]
