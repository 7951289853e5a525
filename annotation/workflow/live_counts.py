"""Live state counts: one broadcast per project per window, scheduled by every transition that changes
a state, sent to the browsers watching the project (annotation.tasks.project_state_counts_broadcast)."""

import logging

from django.db import transaction

from core.hooks import task_send
from core.realtime import first_in_window, window_known_open, window_length_get

logger = logging.getLogger(__name__)

COUNTS_BROADCAST = "annotation.tasks.project_state_counts_broadcast"  # sent by name: tasks sit above


def project_counts_changed(project_id: int) -> None:
    """Schedule one state-counts broadcast per project per window, however many transitions happen.
    The broadcast runs when its window is over and reads the counts then, so it covers every change
    made while it waited. A window is a second, or longer on a project big enough that counting takes
    more than COUNTS_COST_SHARE of that (see project_state_counts_broadcast)."""
    transaction.on_commit(lambda: project_counts_broadcast_schedule(project_id))


def project_counts_broadcast_schedule(project_id: int) -> None:
    """project_counts_changed's work, for a transition that has committed."""
    window = counts_window(project_id)
    if window_known_open(window):
        return
    try:
        seconds = window_length_get(window, default=COUNTS_WINDOW_SECONDS[0])
        if first_in_window(window, seconds):
            task_send(COUNTS_BROADCAST, project_id, countdown=seconds)
    except Exception:  # the transition has committed: a missed live update must not fail it
        logger.warning("Could not schedule the counts broadcast of project %s", project_id, exc_info=True)


# A broadcast may take this share of the time between two (counting a million items takes about
# 0.12 s, so their windows are 2.4 s), within these bounds in seconds.
COUNTS_COST_SHARE = 0.05
COUNTS_WINDOW_SECONDS = (1.0, 30.0)


def counts_window_length(counting_seconds: float) -> float:
    shortest, longest = COUNTS_WINDOW_SECONDS
    return min(longest, max(shortest, counting_seconds / COUNTS_COST_SHARE))


def counts_window(project_id: int) -> str:
    return f"counts:{project_id}"
