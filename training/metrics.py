"""The training layer's metrics (`core.metrics`): `ask` and drafting counted where they happen, runs,
tickets and deployed versions read from the database at each scrape.

- `handover_ask_total{project, outcome, arm}`: `ask` requests by outcome: `answered` (the model was
  confident enough), `cache` (an approved answer to the same or, with the semantic cache, a close
  question), `handed_over` (people got the question), `unavailable` (503: no worker or server in time),
  `error`; `arm` is the caller's arm while a canary runs (`canary` | `baseline`), else `none` (also for
  the cache, which no version answers, and for failures).
  The hand-over rate is `rate(…{outcome="handed_over"}) / rate(…{outcome=~"answered|handed_over"})`.
- `handover_ask_latency_seconds{outcome, arm}`: how long an `ask` took in the service.
- `handover_drafts_total{project}`: drafts stored by the drafting task (one per item drafted).
- `handover_training_runs{project, status}`: runs per state (a stuck `running` run is an alert).
- `handover_tickets_total{project}`: hand-over tickets ever opened.
- `handover_deployed_version{project}`: the id of the deployed model version (changes on promotion).
- `handover_canary_share{project, candidate, baseline}`: the share of callers a running canary gets
  (training/canary.py); absent when none runs.
"""

from collections.abc import Iterable

from django.db.models import Count
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .models import Canary, CanaryState, HandoverTicket, ModelVersion, ModelVersionStatus, TrainingRun

ASK = Counter("handover_ask", "ask requests by outcome and canary arm.", ["project", "outcome", "arm"])
ASK_LATENCY = Histogram(
    "handover_ask_latency_seconds",
    "Time an ask took in the service, by outcome and canary arm.",
    ["outcome", "arm"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0),
)
DRAFTS = Counter("handover_drafts", "Drafts stored by the drafting task (items drafted).", ["project"])


def collect() -> Iterable:
    runs = GaugeMetricFamily(
        "handover_training_runs", "Training runs per state.", labels=["project", "status"]
    )
    for project_id, status, n in (
        TrainingRun.objects.values_list("project_id", "status").annotate(n=Count("pk")).order_by()
    ):
        runs.add_metric([str(project_id), status], n)
    yield runs
    tickets = CounterMetricFamily("handover_tickets", "Hand-over tickets opened.", labels=["project"])
    for project_id, n in HandoverTicket.objects.values_list("project_id").annotate(n=Count("pk")).order_by():
        tickets.add_metric([str(project_id)], n)
    yield tickets
    deployed = GaugeMetricFamily(
        "handover_deployed_version", "The deployed model version's id, per project.", labels=["project"]
    )
    for project_id, version_id in ModelVersion.objects.filter(status=ModelVersionStatus.DEPLOYED).values_list(
        "project_id", "pk"
    ):
        deployed.add_metric([str(project_id)], version_id)
    yield deployed
    canaries = GaugeMetricFamily(
        "handover_canary_share",
        "Share of callers a running canary sends to its candidate.",
        labels=["project", "candidate", "baseline"],
    )
    running = Canary.objects.filter(state=CanaryState.RUNNING)
    for project_id, candidate, baseline, share in running.values_list(
        "project_id", "candidate_id", "baseline_id", "share"
    ):
        canaries.add_metric([str(project_id), str(candidate), str(baseline)], share)
    yield canaries
