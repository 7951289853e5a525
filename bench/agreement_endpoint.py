"""Time GET /api/projects/{id}/agreement/ on 100,000 responses x 3 raters x 3 dimensions in PostgreSQL,
against bare krippendorff.alpha on the same three matrices.

    scripts/with-test-services.sh .venv/bin/python bench/agreement_endpoint.py
"""

import io
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402
from _setup import timed  # noqa: E402

django.setup()

import krippendorff  # noqa: E402
import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

UNITS, RATERS, REPEATS = 100_000, 3, 5
KEYS = ("accuracy", "politeness", "usefulness")
WEIGHTS = (0.4, 0.3, 0.3)
DOMAIN = [1, 2, 3, 4, 5]


def seed():
    from django.contrib.auth import get_user_model

    from annotation.models import Membership, Project
    from review.models import Rating, Response
    from review.rating.services import rubric_current

    User = get_user_model()
    admin = User.objects.create(username="bench-admin", is_staff=True)
    project = Project.objects.create(name="bench", slug="bench", created_by=admin, ratings_per_response=3)
    raters = [User.objects.create(username=f"rater{i}") for i in range(RATERS)]
    for user in raters:
        Membership.objects.create(project=project, user=user, role="expert")
    Membership.objects.create(project=project, user=admin, role="admin")
    rubric = rubric_current(project=project)

    rng = np.random.default_rng(0)
    truth = rng.integers(1, 6, size=(len(KEYS), UNITS))
    scores = np.clip(truth[:, None, :] + rng.integers(-1, 2, size=(len(KEYS), RATERS, UNITS)), 1, 5)

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [Response._meta.db_table])
        first_id = cursor.fetchone()[0] + 1
        buffer = io.StringIO()
        for unit in range(UNITS):
            buffer.write(f"{first_id + unit}\t{project.pk}\tq{unit}\ta{unit}\tcandidate\tm{unit % 2}\tnow\n")
        buffer.seek(0)
        with cursor.cursor.copy(
            f"COPY {Response._meta.db_table} (id, project_id, input, text, origin, model, created_at)"
            " FROM STDIN"
        ) as copy:
            copy.write(buffer.read())
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [Response._meta.db_table, first_id + UNITS]
        )
        buffer = io.StringIO()
        for rater_index, rater in enumerate(raters):
            for unit in range(UNITS):
                values = scores[:, rater_index, unit]
                body = json.dumps(dict(zip(KEYS, map(int, values), strict=True)))
                weighted = sum(w * v for w, v in zip(WEIGHTS, values, strict=True))
                buffer.write(
                    f"{project.pk}\t{first_id + unit}\t{rater.pk}\t{rubric.pk}\t{body}\t{weighted}\tnow\n"
                )
        buffer.seek(0)
        with cursor.cursor.copy(
            f"COPY {Rating._meta.db_table} (project_id, response_id, rater_id, rubric_id, scores,"
            " weighted_score, created_at) FROM STDIN"
        ) as copy:
            copy.write(buffer.read())
        cursor.execute(f"ANALYZE {Response._meta.db_table}")
        cursor.execute(f"ANALYZE {Rating._meta.db_table}")
    print(f"seeded {UNITS:,} responses, {UNITS * RATERS:,} ratings in {time.perf_counter() - start:.1f} s")
    return project, admin, scores.astype(float)


def main() -> None:
    settings.DATABASES["default"].setdefault("TEST", {})["MIGRATE"] = False
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from rest_framework.test import APIClient

        from review.rating.selectors import agreement_report

        project, admin, scores = seed()
        client = APIClient()
        client.force_authenticate(admin)
        url = f"/api/projects/{project.pk}/agreement/"

        def bare():
            return [
                krippendorff.alpha(
                    reliability_data=scores[i], value_domain=DOMAIN, level_of_measurement="ordinal"
                )
                for i in range(len(KEYS))
            ]

        bare_best, bare_median, alphas = timed(bare, REPEATS)
        print(
            f"{UNITS:,} responses x {RATERS} raters x {len(KEYS)} dimensions, ordinal 1..5;"
            f" best (median) of {REPEATS}"
        )
        print(f"bare krippendorff.alpha x3 (matrices in memory): {bare_best:7.3f} s ({bare_median:.3f})")
        for bootstrap in (0, 1000):
            best, median, report = timed(
                lambda b=bootstrap: agreement_report(project=project, bootstrap=b), REPEATS
            )
            for dimension, alpha in zip(report["dimensions"], alphas, strict=True):
                assert abs(dimension["alpha"] - alpha) < 1e-9, (dimension["alpha"], alpha)
            print(
                f"agreement_report selector, B={bootstrap:>5}:      {best:7.3f} s ({median:.3f})"
                f"  ratio {best / bare_best:5.1f}x"
            )
        best, median, answer = timed(lambda: client.get(url), REPEATS)
        assert answer.status_code == 200, answer.content[:500]
        body = answer.json()
        print(
            f"GET {url} (B=1000):  {best:7.3f} s ({median:.3f})  ratio {best / bare_best:5.1f}x"
            f"  target <= 2 s: {'met' if median <= 2 else 'MISSED'}"
        )
        for dimension in body["dimensions"]:
            print(
                f"  {dimension['key']:<11} alpha={dimension['alpha']:.4f}"
                f" CI [{dimension['alpha_ci_low']:.4f}, {dimension['alpha_ci_high']:.4f}]"
                f" units={dimension['n_units']:,} raters={dimension['n_raters']}"
            )
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()
