"""The default-queue task new responses send (by name, from review): a cheap look for the project's
pre-scoring judge, which then judges them on the gpu queue. Most projects have none, so the gpu queue
(concurrency 1, shared with drafting and training) never sees a message for them."""

from celery import shared_task

from . import services


@shared_task
def judges_prescore_request(project_id: int) -> list[int]:
    return services.judges_prescore_request(project_id=project_id)
