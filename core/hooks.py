"""How a lower layer reaches a higher one without importing it (docs/ARCHITECTURE.md, "Layers").

The apps are layered core ← annotation ← review ← training: each imports only those to its left. Where
a lower layer must reach up, it does so in one of two plain ways:

- To *start work* higher up (an approval starting the training check, new items asking for drafts), it
  sends that work's Celery task by name once its transaction commits: `task_send_on_commit(name, ...)`.
  The task already is the unit of work and has a stable name; nothing is registered, and the sender
  knows a string, not a module.
- To *ask* and use the answer within the same request (is this project setting valid? what do the
  higher layers add to an export, to the work queue?), it calls a hook point named below, which the
  higher app fills in its `AppConfig.ready()`. A point nobody filled does nothing (or says so), so a
  lower layer runs, and is tested, on its own.
"""

import logging
from collections.abc import Callable

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

# The hook points: name -> what the function is called with and returns.
PROJECT_SETTINGS_CHECK = "project.settings_check"  # (changes: dict) -> None; raises ApplicationError
EXPORT_PROVENANCE = "export.provenance"  # (item_ids: list[int]) -> {item id: {key: value}}
WORK_QUEUE_STAGE = "work_queue.stage"  # {stage name: (project, user) -> task data | None}
METRICS_COLLECTORS = "metrics.collectors"  # {app label: () -> prometheus metric families} (core.metrics)
# Gold and attention checks (review/gold/): {"claim": (project, user, stage) -> gold item ids to offer
# this claim, or None (raises NotAllowed "gold_paused" for a paused person); "answer": (item, user,
# stage, answer: dict) -> None, scores an answer to a gold item; "extra_review": (project, user) -> bool}
WORK_QUEUE_GOLD = "work_queue.gold"
IMPORT_ITEMS_ADDED = "import.items_added"  # (project_id, actor_id) -> None, in the import's transaction
PAGE_NOTICES = "page.notices"  # (request) -> None: adds the messages a person is owed on their next page

_filled: dict[str, Callable | dict] = {}


def hook_fill(point: str, function: Callable | dict) -> None:
    """Fill a hook point (one implementation each; filling again replaces it, so a reload is harmless)."""
    _filled[point] = function


def hook(point: str):
    """What fills the point, or None."""
    return _filled.get(point)


def task_send(name: str, *args, **options) -> None:
    """Send the Celery task `name` (routed by CELERY_TASK_ROUTES like any other; `options` as
    apply_async takes them). A broker that cannot take it is logged: the change that asked for the
    work has committed and stands."""
    try:
        current_app.send_task(name, args=args, **options)
    except Exception:
        logger.warning("Could not send %s%r", name, args, exc_info=True)


def task_send_on_commit(name: str, *args, **options) -> None:
    transaction.on_commit(lambda: task_send(name, *args, **options))
