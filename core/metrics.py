"""Prometheus metrics at `GET /metrics` (prometheus-client's text format).

Two kinds, both documented in docs/ARCHITECTURE.md ("Metrics") with example alerts:

- Events counted where they happen (an `ask` answered or handed over, its latency, drafts written):
  prometheus-client counters and histograms defined by the app that owns the event. In a deployment of
  several processes (the web server's and the workers'), set `PROMETHEUS_MULTIPROC_DIR` to a directory
  they share and empty at start (`runstack` does, under `var/`); each process then writes its values
  there and a scrape sums them. Without it a scrape sees the answering process's own values.
- State read from the database at each scrape (items per project and status, i.e. the queue depth of
  every stage; training runs per state; hand-over tickets): the higher apps fill the hook point
  `METRICS_COLLECTORS` with functions returning metric families, so core imports none of them.

Who may scrape: staff (session or token), or a scraper sending `Authorization: Bearer
$HANDOVER_METRICS_TOKEN` when that setting is set. Labels name projects by id, never by name.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from .hooks import METRICS_COLLECTORS, hook, hook_fill


def collectors_add(label: str, collect: Callable[[], Iterable[Metric]]) -> None:
    """An app's database-backed metrics (called from its AppConfig.ready())."""
    hook_fill(METRICS_COLLECTORS, {**(hook(METRICS_COLLECTORS) or {}), label: collect})


class _HookCollector:
    """The filled collectors as one prometheus collector, read at each scrape."""

    def collect(self) -> Iterable[Metric]:
        for _label, collect in sorted((hook(METRICS_COLLECTORS) or {}).items()):
            yield from collect()


def metrics_text() -> bytes:
    """The exposition: the counted events (summed over processes when multiprocess) and the state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        events = CollectorRegistry()
        multiprocess.MultiProcessCollector(events)
    else:
        events = REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(_HookCollector())
    return generate_latest(events) + generate_latest(state)


def _may_scrape(request: HttpRequest) -> bool | None:
    """True: allowed; False: authenticated but not allowed (403); None: no credentials (401)."""
    token = settings.HANDOVER_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), token)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        from rest_framework.authentication import TokenAuthentication
        from rest_framework.exceptions import AuthenticationFailed

        try:  # an API token of a staff user
            found = TokenAuthentication().authenticate(request)
        except AuthenticationFailed:
            return False
        if found is None:
            return None
        user = found[0]
    return bool(user.is_staff)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    allowed = _may_scrape(request)
    if not allowed:
        status = 401 if allowed is None else 403
        response = HttpResponse(
            "Staff, or Authorization: Bearer $HANDOVER_METRICS_TOKEN, may read metrics.\n",
            status=status,
            content_type="text/plain; charset=utf-8",
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
