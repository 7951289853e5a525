"""Time the preference leaderboard (review.preference.selectors.leaderboard) over 1,000,000 judgements of
50 models in PostgreSQL, against the same selector over 100,000 judgements in the same command.

    scripts/with-test-services.sh .venv/bin/python bench/leaderboard.py

Each pair is two responses of two different models to one prompt, judged by 10 raters; choices follow a
Bradley–Terry model with known strengths (10 % ties), so the fit can be checked against the truth.
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
from _setup import next_ids, timed  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

MODELS, RATERS, REPEATS = 50, 10, 5
CATEGORIES = ("billing", "network", "device", "account", "other")
TIE_RATE = 0.1


def _copy(cursor, table: str, columns: str, buffer: io.StringIO) -> None:
    buffer.seek(0)
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(buffer.read())


def seed(slug: str, pairs: int, raters: list, strengths: np.ndarray, rng: np.random.Generator):
    """A project with `pairs` pairs of random model pairings, each judged by every rater."""
    from annotation.models import Project
    from review.models import Judgement, Pair, Response

    project = Project.objects.create(name=slug, slug=slug, created_by=raters[0], ratings_per_response=RATERS)
    first = rng.integers(0, MODELS, size=pairs)
    second = (first + rng.integers(1, MODELS, size=pairs)) % MODELS  # never the same model
    categories = rng.integers(0, len(CATEGORIES), size=pairs)
    p_first = 1 / (1 + np.exp(strengths[second] - strengths[first]))
    draws = rng.random((pairs, len(raters)))
    tie = rng.random((pairs, len(raters))) < TIE_RATE
    swapped = rng.random((pairs, len(raters))) < 0.5
    start = time.perf_counter()
    with connection.cursor() as cursor:
        response_id = next_ids(cursor, Response._meta.db_table, 2 * pairs)
        buffer = io.StringIO()
        for n in range(pairs):
            for side, model in enumerate((first[n], second[n])):
                buffer.write(
                    f"{response_id + 2 * n + side}\t{project.pk}\tq{n}\t\t[]\tanswer {n}.{side}\tcandidate"
                    f"\tm{model:02d}\tnow\n"
                )
        _copy(
            cursor,
            Response._meta.db_table,
            "id, project_id, input, system, messages, text, origin, model, created_at",
            buffer,
        )
        pair_id = next_ids(cursor, Pair._meta.db_table, pairs)
        buffer = io.StringIO()
        for n in range(pairs):
            metadata = json.dumps({"category": CATEGORIES[categories[n]]})
            buffer.write(
                f"{pair_id + n}\t{project.pk}\t{response_id + 2 * n}\t{response_id + 2 * n + 1}"
                f"\tm{first[n]:02d}\tm{second[n]:02d}\tmodel_versions\t{metadata}\t\tnow\n"
            )
        _copy(
            cursor,
            Pair._meta.db_table,
            "id, project_id, response_a_id, response_b_id, model_a, model_b,"
            " source, metadata, prior, created_at",
            buffer,
        )
        buffer = io.StringIO()
        for n in range(pairs):
            for r, rater in enumerate(raters):
                choice = "tie" if tie[n, r] else ("a" if draws[n, r] < p_first[n] else "b")
                shown = "t" if swapped[n, r] else "f"
                buffer.write(f"{project.pk}\t{pair_id + n}\t{rater.pk}\t{choice}\t\t\t{shown}\tnow\n")
        _copy(
            cursor,
            Judgement._meta.db_table,
            "project_id, pair_id, rater_id, choice, strength, reason, swapped, created_at",
            buffer,
        )
        for table in (Response, Pair, Judgement):
            cursor.execute(f"ANALYZE {table._meta.db_table}")
    judgements = pairs * len(raters)
    print(f"seeded {slug}: {pairs:,} pairs, {judgements:,} judgements in {time.perf_counter() - start:.1f} s")
    return project


def main() -> None:
    settings.DATABASES["default"].setdefault("TEST", {})["MIGRATE"] = True
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from django.contrib.auth import get_user_model

        from review.preference.selectors import leaderboard

        User = get_user_model()
        raters = [User.objects.create(username=f"rater{i}") for i in range(RATERS)]
        rng = np.random.default_rng(0)
        strengths = rng.normal(0, 1, size=MODELS)
        small = seed("bench-100k", 10_000, raters, strengths, rng)
        large = seed("bench-1m", 100_000, raters, strengths, rng)
        print(f"{MODELS} models, {RATERS} raters per pair; leaderboard selector, best (median) of {REPEATS}")

        base_best, base_median, _ = timed(lambda: leaderboard(project=small), REPEATS)
        print(f"baseline, 100,000 judgements:                    {base_best:6.3f} s ({base_median:.3f})")
        best, median, board = timed(lambda: leaderboard(project=large), REPEATS)
        print(
            f"1,000,000 judgements:                            {best:6.3f} s ({median:.3f})"
            f"  ratio {best / base_best:4.1f}x  target <= 2 s: {'met' if median <= 2 else 'MISSED'}"
        )
        g_best, g_median, grouped = timed(
            lambda: leaderboard(project=large, metadata_key="category"), REPEATS
        )
        print(
            f"1,000,000 judgements, per category (5 values):   {g_best:6.3f} s ({g_median:.3f})"
            f"  ratio {g_best / base_best:4.1f}x"
        )
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(User.objects.create(username="bench-admin", is_staff=True))
        url = f"/api/projects/{large.pk}/leaderboard/"
        a_best, a_median, answer = timed(lambda: client.get(url), REPEATS)
        assert answer.status_code == 200, answer.content[:500]
        print(
            f"GET {url}:             {a_best:6.3f} s ({a_median:.3f})  ratio {a_best / base_best:4.1f}x"
            f"  target <= 2 s: {'met' if a_median <= 2 else 'MISSED'}"
        )
        # Not part of the target: the leaderboard page also shows agreement on the same judgements.
        from review.preference.selectors import preference_agreement

        k_best, _, agreement = timed(lambda: preference_agreement(project=large), repeats=1)
        print(
            f"(page extra) preference_agreement, B=1000, 1,000,000 judgements: {k_best:6.3f} s,"
            f" alpha {agreement['alpha']:.4f}"
        )
        # The fit should recover the strengths it was drawn from, up to the shared offset and a shrink:
        # the 10 % ties, drawn regardless of strength and counted half, pull every win rate toward 0.5.
        fitted = {row["model"]: row["strength"] for row in board["models"]}
        truth = {f"m{m:02d}": strengths[m] for m in range(MODELS)}
        names = sorted(truth)
        x = np.array([truth[n] for n in names])
        y = np.array([fitted[n] for n in names])
        print(
            f"judgements counted: {board['n_judgements']:,}; fit: {board['fit']['iterations']} iterations;"
            f" strengths vs truth: correlation {np.corrcoef(x, y)[0, 1]:.4f},"
            f" slope {np.polyfit(x, y, 1)[0]:.3f};"
            f" groups: {len(grouped['groups'])}"
        )
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()
