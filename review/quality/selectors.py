"""Per-person quality of a project: the table of figures per person over a window, who may see which
rows, and its CSV.

A figure is registered with `@figure(Column(...), ...)`: it returns {user id: {column key: value}},
and the table, the API, the CSV and the page pick its columns up from the registry. Adding a column
(as gold accuracy was) is one decorated function. The figures read three scans (`scans.py`: decisions,
answers, the audit log's tasks), each made once per table, side by side on their own connections when
the caller is not inside a transaction; so the number of queries does not grow with the people.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation.models import Membership, Project, Role
from annotation.selectors import user_roles
from review.gold.selectors import gold_accuracy_by_person
from review.quality import scans
from review.rating.selectors import RatingFilters, rater_deviation_summary

DEFAULT_DAYS = 30
MAX_DAYS = 3650


@dataclass(frozen=True)
class Column:
    """One column of the table: `kind` says how to show it (count, share, seconds, number)."""

    key: str
    label: str
    kind: str
    help: str = ""

    def as_dict(self) -> dict:
        return {"key": self.key, "label": str(self.label), "kind": self.kind, "help": str(self.help)}


@dataclass(frozen=True)
class Window:
    """What a figure reads: a project's work since a moment."""

    project: Project
    since: datetime
    until: datetime = field(default_factory=timezone.now)
    # Scans of the window that several figures read, each made once (`once`).
    scans: dict = field(default_factory=dict, compare=False, repr=False)

    def once(self, name: str, compute: Callable[[], object]):
        if name not in self.scans:
            self.scans[name] = compute()
        value = self.scans[name]
        return value.result() if isinstance(value, Future) else value  # started side by side


Figure = Callable[[Window], dict[int, dict]]
FIGURES: list[tuple[tuple[Column, ...], Figure]] = []


def figure(*columns: Column) -> Callable[[Figure], Figure]:
    """Register a per-person figure and the columns it fills, in table order."""

    def register(function: Figure) -> Figure:
        FIGURES.append((columns, function))
        return function

    return register


def columns() -> list[Column]:
    return [column for group, _function in FIGURES for column in group]


# --- the figures, in table order ----------------------------------------------------------------------


# The three scans that cost, each reading one table's period for every figure that needs it.
SCANS: dict[str, Callable[[Window], object]] = {
    "decisions": lambda w: scans.decision_outcomes(project=w.project, since=w.since),
    "answers": lambda w: scans.answers_written(project=w.project, since=w.since),
    "timing": lambda w: scans.task_medians(project=w.project, since=w.since, by="actor"),
}


def _decisions(window: Window) -> tuple[dict, dict, dict]:
    return window.once("decisions", lambda: SCANS["decisions"](window))


def _answers(window: Window) -> dict[int, dict]:
    return window.once("answers", lambda: SCANS["answers"](window))


def _timing(window: Window) -> dict:
    return window.once("timing", lambda: SCANS["timing"](window))


@figure(
    Column("tasks", _("Tasks"), "count", _("Tasks done in the window: every kind below together")),
    Column("annotated", _("Answers"), "count", _("Answers submitted (rework included)")),
    Column("reviewed", _("Reviews"), "count", _("Review decisions at every tier and spot checks")),
    Column("rated", _("Ratings"), "count", _("Responses scored on the rubric")),
    Column("compared", _("Comparisons"), "count", _("Pairs judged and sets ranked")),
)
def throughput(window: Window) -> dict[int, dict]:
    t = scans.tables()
    sql = f"""
        SELECT user_id, kind, count(*) FROM (
            SELECT rater_id AS user_id, 'rated' AS kind FROM {t["rating"]}
            WHERE project_id = %s AND created_at >= %s
            UNION ALL
            SELECT rater_id, 'compared' FROM {t["judgement"]}
            WHERE project_id = %s AND ranking_id IS NULL AND created_at >= %s
            UNION ALL
            SELECT rater_id, 'compared' FROM {t["ranking"]} WHERE project_id = %s AND created_at >= %s
        ) tasks GROUP BY user_id, kind
    """
    p, since = window.project.pk, window.since
    counts: dict[int, dict] = defaultdict(lambda: {"annotated": 0, "reviewed": 0, "rated": 0, "compared": 0})
    for user, kind, n in scans.fetch(sql, [p, since, p, since, p, since]):
        counts[user][kind] += n
    for author, answers in _answers(window).items():
        counts[author]["annotated"] = answers["answers"]
    for reviewer, n in _decisions(window)[2].items():
        counts[reviewer]["reviewed"] = n
    return {user: {"tasks": sum(row.values()), **row} for user, row in counts.items()}


@figure(
    Column("median_seconds", _("Median time per task"), "seconds", _("From claim to submit or decision")),
    Column(
        "timed_tasks",
        _("Timed tasks"),
        "count",
        _("Tasks the median is taken over: all, or on a large project those of a sample of items"),
    ),
)
def time_per_task(window: Window) -> dict[int, dict]:
    medians = _timing(window)
    return {actor: {"median_seconds": median, "timed_tasks": n} for actor, (n, median) in medians.items()}


@figure(
    Column(
        "rating_deviation",
        _("Deviation from consensus"),
        "number",
        _("Mean absolute difference of their scores from the other raters' mean, in scale points"),
    ),
    Column(
        "rating_disagreement",
        _("Disagreement share"),
        "share",
        _("Share of pairs with another rater that scored differently"),
    ),
    Column("rated_with_others", _("Shared responses"), "count", _("Responses they rated with others")),
)
def agreement(window: Window) -> dict[int, dict]:
    summary = rater_deviation_summary(project=window.project, filters=RatingFilters(since=window.since))
    return {
        rater: {
            "rating_deviation": entry["mean_abs_deviation"],
            "rating_disagreement": entry["disagreement_share"],
            "rated_with_others": entry["n_units"],
        }
        for rater, entry in summary.items()
    }


@figure(
    Column(
        "gold_accuracy",
        _("Gold accuracy"),
        "share",
        _("Share of the gold tasks they answered that were right"),
    ),
    Column(
        "gold_tasks", _("Gold tasks"), "count", _("Gold tasks (silent checks) they answered in the window")
    ),
)
def gold(window: Window) -> dict[int, dict]:
    return {
        user: {"gold_accuracy": row["accuracy"], "gold_tasks": row["total"]}
        for user, row in gold_accuracy_by_person(project=window.project, since=window.since).items()
    }


@figure(
    Column("answers_reviewed", _("Answers reviewed"), "count", _("Their answers that a review decided")),
    Column(
        "answers_rejected",
        _("Answers sent back"),
        "share",
        _("Share of their reviewed answers the first review rejected"),
    ),
    Column("spot_checks_failed", _("Failed spot checks"), "count", _("Their answers a spot check rejected")),
    Column(
        "approvals_checked",
        _("Approvals checked"),
        "count",
        _("Their approvals that a later tier (domain review, spot check) decided on"),
    ),
    Column(
        "approvals_overturned",
        _("Approvals overturned"),
        "share",
        _("Share of their checked approvals the later tier rejected"),
    ),
)
def rejected_at_the_next_tier(window: Window) -> dict[int, dict]:
    answers, approvals, _reviews = _decisions(window)
    figures: dict[int, dict] = defaultdict(dict)
    for author, row in answers.items():
        figures[author].update(
            answers_reviewed=row["reviewed"],
            answers_rejected=row["rework"] / row["reviewed"] if row["reviewed"] else None,
            spot_checks_failed=row["spot_check_failed"],
        )
    for reviewer, row in approvals.items():
        figures[reviewer].update(
            approvals_checked=row["checked"], approvals_overturned=row["overturned"] / row["checked"]
        )
    return dict(figures)


@figure(
    Column("from_drafts", _("Answers from drafts"), "count", _("Their answers that started from a draft")),
    Column(
        "draft_edit_median",
        _("Median draft edit"),
        "number",
        _("Median character edit distance from the draft, over their most recent answers"),
    ),
    Column(
        "draft_edit_relative",
        _("Median draft edit (share)"),
        "share",
        _("The same, relative to the draft's length"),
    ),
    Column(
        "drafts_unchanged", _("Drafts kept as they were"), "share", _("Share of answers equal to their draft")
    ),
)
def draft_edits(window: Window) -> dict[int, dict]:
    figures = {}
    for author, row in _answers(window).items():
        if not row["from_drafts"]:
            continue
        summary = scans.draft_edit_summary(row["sample"])
        figures[author] = {
            "from_drafts": row["from_drafts"],
            "draft_edit_median": summary["median"],
            "draft_edit_relative": summary["median_relative"],
            "drafts_unchanged": row["kept"] / row["from_drafts"],
        }
    return figures


# --- the table ----------------------------------------------------------------------------------------


def _start_scans(window: Window, pool: ThreadPoolExecutor) -> None:
    """Start the SCANS at once, each on its own connection and all on this transaction's snapshot, so
    the figures see one moment of the database while PostgreSQL reads the tables side by side, and
    this connection reads the small ones meanwhile.

    Only from outside a caller's transaction (a request, a command): other connections could not see
    its uncommitted rows. Called inside `scans.sorting_in_memory`'s transaction, which exports it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = cursor.fetchone()[0]

    def run(scan):
        try:
            with scans.sorting_in_memory(snapshot=snapshot):
                return scan(window)
        finally:
            connection.close()  # this thread's own connection

    for name, scan in SCANS.items():
        window.scans[name] = pool.submit(run, scan)


def window_for(*, project: Project, days: int = DEFAULT_DAYS, now: datetime | None = None) -> Window:
    now = now or timezone.now()
    return Window(project=project, since=now - timedelta(days=days), until=now)


def person_quality(*, window: Window, only: int | None = None) -> dict:
    """The table: every member of the project and everyone else with work in the window, one row each
    (only the row of user id `only` when given), with every registered figure's columns (0 or None where
    a figure has nothing for the person), ordered by username."""
    window = replace(window, scans={})  # every table reads the database afresh
    parallel = scans.postgres() and not connection.in_atomic_block
    values: dict[int, dict] = defaultdict(dict)
    roles: dict[int, set[str]] = defaultdict(set)
    pool = ThreadPoolExecutor(max_workers=len(SCANS)) if parallel else nullcontext()
    with scans.sorting_in_memory(), pool:
        if parallel:
            _start_scans(window, pool)
        members = Membership.objects.filter(project=window.project).values_list("user_id", "role")
        for user_id, role in members:
            roles[user_id].add(role)
        for _group, function in FIGURES:
            for user_id, figures in function(window).items():
                values[user_id].update(figures)
    ids = set(values) | set(roles)
    if only is not None:
        ids &= {only}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    # A count nobody filled is a true zero; any other figure is undefined for the person.
    defaults = {column.key: 0 if column.kind == "count" else None for column in columns()}
    people = []
    for user_id in sorted(ids, key=lambda pk: (names.get(pk, ""), pk)):
        row = {"user": user_id, "username": names.get(user_id, str(user_id))}
        row["roles"] = sorted(roles.get(user_id, ()), key=Role.values.index)
        row.update({key: values[user_id].get(key, default) for key, default in defaults.items()})
        people.append(row)
    return {
        "project": window.project.pk,
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
        "columns": [column.as_dict() for column in columns()],
        "people": people,
    }


def person_quality_for(*, user: AbstractBaseUser, project: Project, days: int = DEFAULT_DAYS) -> dict:
    """The table as `user` may see it: a project admin (or staff) sees everyone, any other member their
    own row. The caller has checked that the project is visible to them."""
    everyone = Role.ADMIN in user_roles(user=user, project=project)
    report = person_quality(window=window_for(project=project, days=days), only=None if everyone else user.pk)
    return {**report, "days": days, "scope": "everyone" if everyone else "self"}


def csv_rows(report: dict):
    """The table as CSV rows: a header of column keys, then one row per person."""
    keys = [column["key"] for column in report["columns"]]
    yield ["username", "roles", *keys]
    for person in report["people"]:
        values = ("" if person[key] is None else person[key] for key in keys)
        yield [person["username"], " ".join(person["roles"]), *values]
