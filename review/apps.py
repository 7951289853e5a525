from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # What the annotation layer asks of review (core.hooks).
        from core.hooks import EXPORT_PROVENANCE, WORK_QUEUE_STAGE, hook_fill
        from review.preference.api import compare_task_next, rank_task_next
        from review.rating.api import rating_task_next
        from review.selectors import export_provenance

        hook_fill(
            WORK_QUEUE_STAGE, {"rate": rating_task_next, "compare": compare_task_next, "rank": rank_task_next}
        )
        hook_fill(EXPORT_PROVENANCE, export_provenance)
        from core.hooks import IMPORT_ITEMS_ADDED, PAGE_NOTICES, WORK_QUEUE_GOLD
        from review.gold import services as gold
        from review.gold.marking import gold_items_from_import

        hook_fill(
            WORK_QUEUE_GOLD,
            {
                "claim": gold.gold_item_candidates,
                "answer": gold.gold_answer_item,
                "extra_review": gold.gold_under_extra_review,
            },
        )
        hook_fill(IMPORT_ITEMS_ADDED, gold_items_from_import)
        hook_fill(PAGE_NOTICES, gold.gold_notices)
