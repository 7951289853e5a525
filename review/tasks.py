"""Celery tasks of the review app."""

from celery import shared_task

from annotation.models import Project
from review.decisions.services import spot_checks_sample


@shared_task(ignore_result=True)
def spot_checks_sample_task() -> int:
    """Sample each project's approved items of the last day into the spot-check queue (beat, daily).

    Runs once a day over the last day, so each approval gets one chance at the project's rate.
    """
    return sum(
        spot_checks_sample(project=project) for project in Project.objects.filter(spot_check_rate__gt=0)
    )
