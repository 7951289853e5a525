"""The annotation layer's metrics, read from the database at each scrape (`core.metrics`).

`handover_items{project, status}`: items per project and state, so the depth of every stage's queue:
`new` and `drafted` wait for annotators (`new` ones for a draft first), `submitted` and `rework` for
experts and annotators, `expert_review` / `domain_review` for the next tier, `spot_check` for a spot
check. One grouped count (the (project, status) index answers it).
"""

from collections.abc import Iterable

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from annotation.models import Item


def collect() -> Iterable[GaugeMetricFamily]:
    items = GaugeMetricFamily(
        "handover_items",
        "Items per project and state (the queue depth of each stage).",
        labels=["project", "status"],
    )
    rows = Item.objects.values_list("project_id", "status").annotate(n=Count("pk")).order_by()
    for project_id, status, n in rows:
        items.add_metric([str(project_id), status], n)
    yield items
