from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # What the annotation layer asks of review (core.hooks).
        from core.hooks import EXPORT_PROVENANCE, WORK_QUEUE_STAGE, hook_fill
        from review.rating.api import rating_task_next
        from review.selectors import export_provenance

        hook_fill(WORK_QUEUE_STAGE, {"rate": rating_task_next})
        hook_fill(EXPORT_PROVENANCE, export_provenance)
