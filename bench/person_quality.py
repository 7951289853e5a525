"""Time the per-person quality figures (review.quality.selectors.person_quality) and their API over
1,000 people and 1,000,000 tasks in PostgreSQL, all inside the page's default 30-day window, against one
query that only scans the audit log of the same window, in the same command.

    scripts/with-test-services.sh .venv/bin/python bench/person_quality.py

The project has three tiers: 600 annotators, 250 experts, 100 domain reviewers, 50 admins. Each of
300,000 items is drafted, annotated (30 % of drafts kept as they are), reviewed by an expert (10 % sent
back, redone and approved), reviewed at the domain tier (5 % rejected) and 10 % spot-checked (10 %
failed); 10,000 responses get 3 ratings each from the 400 raters. Every task has its claim and its end
in the audit log, as the workflow writes them. Rows are written with COPY (that is setup, not timed).
"""

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402
from _setup import next_ids, timed  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

ITEMS, RESPONSES, RATINGS_PER_RESPONSE, REPEATS = 300_000, 10_000, 3, 5
ROLES = (("annotator", 600), ("expert", 250), ("domain_reviewer", 100), ("admin", 50))
WORDS = ("the", "order", "ships", "refund", "account", "billing", "please", "we", "can", "help", "today")


class Copier:
    """COPY rows of a model: every concrete column, the given values over each field's default, so a
    column added to the model later still gets its default."""

    def __init__(self, cursor, model, ids: bool = True):
        """`ids`: the rows carry their primary keys (reserved with `_next_ids`); else the sequence's."""
        self.cursor, self.model = cursor, model
        self.fields = [f for f in model._meta.concrete_fields if ids or not f.primary_key]
        self.defaults = {f.attname: None if f.primary_key else f.get_default() for f in self.fields}
        self.rows = 0

    def __enter__(self):
        columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        self._copy = self.cursor.cursor.copy(f"COPY {self.model._meta.db_table} ({columns}) FROM STDIN")
        self.copy = self._copy.__enter__()
        return self

    def write(self, **values):
        row = []
        for f in self.fields:
            value = values[f.attname] if f.attname in values else self.defaults[f.attname]
            if f.get_internal_type() == "JSONField":
                value = Jsonb(value)
            row.append(value)
        self.copy.write_row(row)
        self.rows += 1

    def __exit__(self, *exc):
        return self._copy.__exit__(*exc)


def sentence(rng, n=10) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=n))


def seed(rng: np.random.Generator):
    from django.contrib.auth import get_user_model

    from annotation.models import AuditEvent, Draft, Item, Membership, Project, Revision
    from review.models import Rating, Response, ReviewDecision, Rubric
    from review.rating.services import rubric_current

    User = get_user_model()
    owner = User.objects.create(username="bench-owner")
    project = Project.objects.create(name="bench", slug="bench", created_by=owner, review_tiers=3)
    people: dict[str, list[int]] = {}
    for role, count in ROLES:
        users = User.objects.bulk_create(
            [User(username=f"{role}{n:03d}", password="!") for n in range(count)]
        )
        Membership.objects.bulk_create([Membership(project=project, user=u, role=role) for u in users])
        people[role] = [u.pk for u in users]
    rubric = rubric_current(project=project)
    assert isinstance(rubric, Rubric)
    now = timezone.now()
    start = time.perf_counter()
    tasks = 0
    with transaction.atomic(), connection.cursor() as cursor:
        item_id = next_ids(cursor, Item._meta.db_table, ITEMS)
        draft_id = next_ids(cursor, Draft._meta.db_table, ITEMS)
        # at most two annotator revisions per item (first answer, rework)
        revision_id = next_ids(cursor, Revision._meta.db_table, 2 * ITEMS)
        annotators = rng.choice(people["annotator"], size=ITEMS)
        experts = rng.choice(people["expert"], size=ITEMS)
        domains = rng.choice(people["domain_reviewer"], size=ITEMS)
        spotters = rng.choice(people["domain_reviewer"], size=ITEMS)
        kept = rng.random(ITEMS) < 0.3
        sent_back = rng.random(ITEMS) < 0.10
        domain_rejects = rng.random(ITEMS) < 0.05
        spot = (rng.random(ITEMS) < 0.10) & ~domain_rejects
        spot_fails = rng.random(ITEMS) < 0.10
        begins = [now - timedelta(days=29) + timedelta(days=28 * float(x)) for x in rng.random(ITEMS)]
        seconds = rng.lognormal(np.log(60), 0.8, size=(ITEMS, 6))
        drafts = [sentence(rng) for _ in range(2000)]
        edits = [sentence(rng, 3) for _ in range(500)]
        items_out, drafts_out, revisions_out, decisions_out, audit_out = [], [], [], [], []
        for n in range(ITEMS):
            item, draft_text = item_id + n, drafts[n % len(drafts)]
            annotator, t = int(annotators[n]), begins[n]
            events = []  # (actor, action, data, at)

            def task(actor, stage, end_action, data, k, at, n=n, events=events):
                """A claim at `at` and its end `seconds[n, k]` later; the next task starts 5 s on."""
                end_at = at + timedelta(seconds=float(seconds[n, k]))
                events.append((actor, "item.claim", {"stage": stage}, at))
                events.append((actor, end_action, data, end_at))
                return end_at, end_at + timedelta(seconds=5)

            first = revision_id + 2 * n
            text = draft_text if kept[n] else f"{draft_text} {edits[n % len(edits)]}"
            submitted, t = task(annotator, "annotate", "item.submit", {"revision": first}, 0, t)
            revisions_out.append((first, item, annotator, text, submitted))
            current, status = first, "approved"
            if sent_back[n]:
                decided, t = task(int(experts[n]), "expert", "item.reject", {"stage": "expert"}, 1, t)
                decisions_out.append(
                    (item, first, "expert", int(experts[n]), "reject", "Not right.", decided)
                )
                current = first + 1
                submitted, t = task(annotator, "annotate", "item.submit", {"revision": current}, 2, t)
                revisions_out.append((current, item, annotator, f"{text} again", submitted))
            decided, t = task(int(experts[n]), "expert", "item.approve", {"stage": "expert"}, 3, t)
            decisions_out.append((item, current, "expert", int(experts[n]), "approve", "", decided))
            if domain_rejects[n]:
                decided, t = task(int(domains[n]), "domain", "item.reject", {"stage": "domain"}, 4, t)
                decisions_out.append((item, current, "domain", int(domains[n]), "reject", "No.", decided))
                status = "rework"
            else:
                decided, t = task(int(domains[n]), "domain", "item.approve", {"stage": "domain"}, 4, t)
                decisions_out.append((item, current, "domain", int(domains[n]), "approve", "", decided))
                if spot[n]:
                    failed = spot_fails[n]
                    decision = "reject" if failed else "approve"
                    action = "item.reject" if failed else "item.approve"
                    spotter = int(spotters[n])
                    decided, t = task(spotter, "spot_check", action, {"stage": "spot_check"}, 5, t)
                    decisions_out.append((item, current, "spot_check", spotter, decision, "", decided))
                    status = "rework" if failed else "approved"
            items_out.append((item, f"q{n}", current, annotator, status, t))
            drafts_out.append((draft_id + n, item, draft_text, begins[n]))
            audit_out.extend((item, *event) for event in events)
        tasks = len(revisions_out) + len(decisions_out)
        with Copier(cursor, Item) as copy:
            for item, text, current, annotator, status, at in items_out:
                messages = [{"role": "user", "content": text}]
                copy.write(
                    id=item,
                    project_id=project.pk,
                    input=text,
                    messages=messages,
                    content_hash=f"{item:064x}",
                    status=status,
                    current_revision_id=current,
                    annotator_id=annotator,
                    approved_at=at if status == "approved" else None,
                    created_at=at,
                    updated_at=at,
                )
        with Copier(cursor, Draft) as copy:
            for pk, item, text, at in drafts_out:
                copy.write(id=pk, item_id=item, text=text, confidence=0.8, rank=0, created_at=at)
        with Copier(cursor, Revision) as copy:
            for pk, item, author, text, at in revisions_out:
                copy.write(
                    id=pk,
                    item_id=item,
                    author_id=author,
                    stage="annotate",
                    text=text,
                    draft_id=draft_id + (item - item_id),
                    created_at=at,
                )
        with Copier(cursor, ReviewDecision, ids=False) as copy:
            for item, revision, stage, reviewer, decision, comment, at in decisions_out:
                copy.write(
                    item_id=item,
                    revision_id=revision,
                    stage=stage,
                    reviewer_id=reviewer,
                    decision=decision,
                    comment=comment,
                    created_at=at,
                )
        with Copier(cursor, AuditEvent, ids=False) as copy:
            for item, actor, action, data, at in audit_out:
                copy.write(
                    project_id=project.pk,
                    actor_id=actor,
                    action=action,
                    target_type="item",
                    target_id=str(item),
                    data=data,
                    created_at=at,
                )
        # Ratings: each response's three raters score around its true value; raters 0-9 are lenient.
        raters = people["expert"] + people["domain_reviewer"] + people["admin"]
        response_id = next_ids(cursor, Response._meta.db_table, RESPONSES)
        with Copier(cursor, Response) as copy:
            for n in range(RESPONSES):
                at = now - timedelta(days=float(rng.random() * 28))
                copy.write(
                    id=response_id + n,
                    project_id=project.pk,
                    input=f"q{n}",
                    messages=[{"role": "user", "content": f"q{n}"}],
                    text=f"a{n}",
                    origin="external",
                    created_at=at,
                )
        truth = rng.integers(1, 6, size=RESPONSES)
        with Copier(cursor, Rating, ids=False) as copy:
            for n in range(RESPONSES):
                for rater in rng.choice(raters, size=RATINGS_PER_RESPONSE, replace=False):
                    lenient = raters.index(int(rater)) < 10
                    score = int(np.clip(truth[n] + rng.integers(-1, 2) + (2 if lenient else 0), 1, 5))
                    scores = {"accuracy": score, "politeness": score, "usefulness": score}
                    copy.write(
                        project_id=project.pk,
                        response_id=response_id + n,
                        rater_id=int(rater),
                        rubric_id=rubric.pk,
                        scores=scores,
                        weighted_score=float(score),
                        created_at=now - timedelta(days=float(rng.random() * 28)),
                    )
        tasks += RESPONSES * RATINGS_PER_RESPONSE
        for model in (Item, Draft, Revision, ReviewDecision, AuditEvent, Response, Rating):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    print(
        f"seeded: {sum(c for _r, c in ROLES):,} people, {tasks:,} tasks ({len(items_out):,} items,"
        f" {len(audit_out):,} audit events) in {time.perf_counter() - start:.1f} s"
    )
    return project


def main() -> None:
    settings.DATABASES["default"].setdefault("TEST", {})["MIGRATE"] = True
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from django.contrib.auth import get_user_model
        from rest_framework.test import APIClient

        from review.dashboard import annotator_quality
        from review.quality import scans
        from review.quality import selectors as quality

        def in_memory(call):
            with scans.sorting_in_memory():
                return call()

        project = seed(np.random.default_rng(0))
        window = quality.window_for(project=project)

        def scan():  # the floor: one pass over the window's audit events, nothing computed
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*), count(DISTINCT actor_id) FROM annotation_auditevent"
                    " WHERE project_id = %s AND target_type = 'item' AND created_at >= %s",
                    [project.pk, window.since],
                )
                return cursor.fetchone()

        base_best, base_median, (events, actors) = timed(scan, REPEATS)
        print(
            f"baseline, one scan of {events:,} audit events ({actors} actors):"
            f" {base_best:6.3f} s ({base_median:.3f})"
        )
        # The three scans the figures read, one at a time (the table runs them side by side).
        for name, scan_of in (
            ("decisions", lambda: scans.decision_outcomes(project=project, since=window.since)),
            ("answers", lambda: scans.answers_written(project=project, since=window.since)),
            ("timing", lambda: scans.task_medians(project=project, since=window.since, by="actor")),
        ):
            s_best, s_median, _ = timed(lambda scan_of=scan_of: in_memory(scan_of), repeats=3)
            print(f"  scan {name:<10} alone:                     {s_best:6.3f} s ({s_median:.3f})")
        best, median, report = timed(lambda: quality.person_quality(window=window), REPEATS)
        people = len(report["people"])
        print(
            f"person_quality, {people} people, 30 days:        {best:6.3f} s ({median:.3f})"
            f"  ratio {best / base_best:4.1f}x  target <= 2 s: {'met' if median <= 2 else 'MISSED'}"
        )
        client = APIClient()
        client.force_authenticate(get_user_model().objects.create(username="bench-admin", is_staff=True))
        url = f"/api/projects/{project.pk}/quality/"
        a_best, a_median, answer = timed(lambda: client.get(url), REPEATS)
        assert answer.status_code == 200, answer.content[:500]
        print(
            f"GET {url}:                  {a_best:6.3f} s ({a_median:.3f})  ratio {a_best / base_best:4.1f}x"
            f"  target <= 2 s: {'met' if a_median <= 2 else 'MISSED'}"
        )
        d_best, _d_median, dashboard = timed(lambda: annotator_quality(project=project), repeats=3)
        print(f"(dashboard) annotator_quality, all time, {len(dashboard)} annotators: {d_best:6.3f} s")
        rows = {p["username"]: p for p in report["people"]}
        sample = rows["annotator000"]
        lenient = max(
            (p for p in report["people"] if p["rating_deviation"] is not None),
            key=lambda p: p["rating_deviation"],
        )
        print(
            f"check: annotator000 {sample['annotated']} answers, {sample['answers_rejected']:.3f} sent back,"
            f" median {sample['median_seconds']:.0f} s, drafts kept {sample['drafts_unchanged']:.2f};"
            f" largest deviation {lenient['username']} ({lenient['rating_deviation']:.2f});"
            f" tasks in the table {sum(p['tasks'] for p in report['people']):,}"
        )
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()
