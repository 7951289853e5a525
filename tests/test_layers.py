"""The structure docs/ARCHITECTURE.md describes: no import cycle anywhere, and every way a lower layer
reaches a higher one (a task sent by name, a hook point) leads somewhere. The layer contracts themselves
are import-linter's (`lint-imports`, run by `make test` before the suite)."""

import grimp
import pytest
from celery import current_app

from annotation import services
from annotation.importing import jobs
from annotation.workflow import live_counts
from annotation.workflow import transitions as workflow
from core import hooks
from training import handover
from training.runs import launch

PACKAGES = ("core", "annotation", "review", "training", "config")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module: each is an import cycle."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_strongly_connected_finds_a_cycle_it_is_given():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_of_the_project_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES)
    modules = set(graph.modules)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}

    assert strongly_connected(edges) == []


@pytest.mark.parametrize(
    "name",
    [
        workflow.TRAINING_TRIGGER_CHECK,
        services.DRAFTS_GENERATE,
        live_counts.COUNTS_BROADCAST,
        jobs.IMPORT_RUN,
        launch.TRAINING_RUN_EXECUTE,
        handover.ASK_GENERATE,
    ],
)
def test_every_task_sent_by_name_is_a_registered_task(name):
    current_app.loader.import_default_modules()  # what a worker does at start-up: autodiscover tasks

    assert name in current_app.tasks


def test_the_higher_apps_fill_the_hook_points_at_start_up():
    from annotation.metrics import collect as annotation_metrics
    from core.metrics import METRICS_COLLECTORS
    from review.preference.api import compare_task_next, rank_task_next
    from review.rating.api import rating_task_next
    from review.selectors import export_provenance
    from training.metrics import collect as training_metrics
    from training.project_settings import project_settings_check

    assert hooks.hook(hooks.PROJECT_SETTINGS_CHECK) is project_settings_check
    assert hooks.hook(hooks.EXPORT_PROVENANCE) is export_provenance
    assert hooks.hook(hooks.WORK_QUEUE_STAGE) == {
        "rate": rating_task_next,
        "compare": compare_task_next,
        "rank": rank_task_next,
    }
    assert hooks.hook(METRICS_COLLECTORS) == {"annotation": annotation_metrics, "training": training_metrics}
