"""The leaderboard and agreement from real judgements: Bradley–Terry strengths, win rates with Wilson
intervals, ties half, per metadata value, rankings counted per pair, filters, nominal alpha."""

import math

import pytest

from review.math.bradley_terry import wilson_interval
from review.preference.judging import judgement_submit, ranking_submit
from tests.factories import MembershipFactory, UserFactory
from tests.test_preference_support import pair, rank_set

pytestmark = pytest.mark.django_db


def raters(project, n):
    users = []
    for i in range(n):
        user = UserFactory(username=f"judge{i}")
        MembershipFactory(project=project, user=user, role="expert")
        users.append(user)
    return users


def play(project, admin, judges, a, b, choices, category="billing"):
    """One pair of `a` vs `b` per choice (as stored: "a" means `a` won), each judged by the next judge."""
    for n, choice in enumerate(choices):
        made = pair(
            project,
            admin,
            models=(a, b),
            texts=(f"{a} {n} {category}", f"{b} {n} {category}"),
            question=f"Question {n} {a} {b} {category}?",
            metadata={"category": category},
        )
        flip = made.model_a != a  # the pair stores the lower response id first
        shown = {"a": "B" if flip else "A", "b": "A" if flip else "B", "tie": "tie"}[choice]
        judgement_submit(pair_id=made.pk, rater=judges[n % len(judges)], choice=shown)


def test_the_leaderboard_ranks_models_by_strength_with_win_rates_and_intervals(api, people, project):
    # given v2 beating v1 3 to 1 with 2 ties, and v1 beating v0 4 to 0
    judges = raters(project, 2)
    play(project, people["admin"], judges, "v2", "v1", ["a", "a", "a", "b", "tie", "tie"])
    play(project, people["admin"], judges, "v1", "v0", ["a", "a", "a", "a"])

    board = api(people["admin"]).get(f"/api/projects/{project.pk}/leaderboard/").json()

    models = {m["model"]: m for m in board["models"]}
    assert [m["model"] for m in board["models"]] == ["v2", "v1", "v0"]
    # v2: 3 wins, 1 loss, 2 ties → (3 + 1) / 6, with Wilson's interval on 4 of 6
    assert (models["v2"]["wins"], models["v2"]["losses"], models["v2"]["ties"]) == (3, 1, 2)
    assert models["v2"]["win_rate"] == pytest.approx(4 / 6)
    assert (models["v2"]["win_rate_ci_low"], models["v2"]["win_rate_ci_high"]) == pytest.approx(
        wilson_interval(4, 6)
    )
    assert models["v1"]["n_judgements"] == 10
    assert board["n_judgements"] == 10
    # v0 never won: the plain maximum is infinite, so the fit is regularised and says so
    assert board["fit"]["regularised"] is True
    assert models["v2"]["elo"] > models["v1"]["elo"] > models["v0"]["elo"]
    assert board["head_to_head"] == [
        {"model_a": "v0", "model_b": "v1", "wins_a": 0, "wins_b": 4, "ties": 0},
        {"model_a": "v1", "model_b": "v2", "wins_a": 1, "wins_b": 3, "ties": 2},
    ]


def test_strengths_between_two_models_are_the_log_odds_of_their_record(api, people, project):
    play(project, people["admin"], raters(project, 1), "v2", "v1", ["a"] * 6 + ["b"] * 2)
    board = api(people["admin"]).get(f"/api/projects/{project.pk}/leaderboard/").json()
    strengths = {m["model"]: m["strength"] for m in board["models"]}
    assert strengths["v2"] - strengths["v1"] == pytest.approx(math.log(3))
    assert board["fit"]["regularised"] is False


def test_the_leaderboard_per_metadata_value(api, people, project):
    judges = raters(project, 1)
    play(project, people["admin"], judges, "v2", "v1", ["a", "a"], category="billing")
    play(project, people["admin"], judges, "v2", "v1", ["b"], category="network")

    board = api(people["admin"]).get(f"/api/projects/{project.pk}/leaderboard/?metadata_key=category").json()

    groups = {g["value"]: {m["model"]: m["wins"] for m in g["models"]} for g in board["groups"]}
    assert groups == {"billing": {"v2": 2, "v1": 0}, "network": {"v2": 0, "v1": 1}}
    filtered = (
        api(people["admin"]).get(f"/api/projects/{project.pk}/leaderboard/?metadata.category=network").json()
    )
    assert filtered["n_judgements"] == 1


def test_a_ranking_counts_once_per_pair_it_orders(people, project):
    from review.preference.selectors import leaderboard

    made = rank_set(project, people["admin"], texts=("c.", "a.", "b."), models=["vc", "va", "vb"])
    by_model = dict(made.responses.values_list("model", "pk"))
    ranking_submit(
        rank_set_id=made.pk, rater=people["expert"], order=[by_model["va"], by_model["vb"], by_model["vc"]]
    )

    board = leaderboard(project=project)

    assert {m["model"]: (m["wins"], m["losses"]) for m in board["models"]} == {
        "va": (2, 0),
        "vb": (1, 1),
        "vc": (0, 2),
    }
    assert [m["model"] for m in board["models"]] == ["va", "vb", "vc"]


def test_filters_by_model_rater_and_source(api, people, project):
    judges = raters(project, 2)
    play(project, people["admin"], judges, "v2", "v1", ["a", "b"])
    url = f"/api/projects/{project.pk}/leaderboard/"
    assert api(people["admin"]).get(f"{url}?rater=judge0").json()["n_judgements"] == 1
    assert api(people["admin"]).get(f"{url}?model=v9").json()["n_judgements"] == 0
    assert api(people["admin"]).get(f"{url}?source=imported").json()["n_judgements"] == 0
    bad = api(people["admin"]).get(f"{url}?source=robots")
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("source")
    bad = api(people["admin"]).get(f"{url}?rater=nobody")
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("rater")


def test_agreement_is_nominal_alpha_over_pairs_with_its_interval_and_position_bias(api, people, project):
    # given three raters on six pairs, agreeing on five
    judges = raters(project, 3)
    for n in range(6):
        made = pair(project, people["admin"], texts=(f"x{n}", f"y{n}"), question=f"Q{n}?")
        for i, judge in enumerate(judges):
            choice = ["A", "B", "tie"][n % 3] if not (n == 5 and i == 2) else "A"
            judgement_submit(pair_id=made.pk, rater=judge, choice=choice)

    report = (
        api(people["admin"]).get(f"/api/projects/{project.pk}/preference-agreement/?bootstrap=200").json()
    )

    assert report["level"] == "nominal"
    assert report["n_units"] == 6 and report["n_judgements"] == 18 and len(report["raters"]) == 3
    assert 0.5 < report["alpha"] < 1
    assert report["alpha_ci_low"] <= report["alpha"] <= report["alpha_ci_high"]
    assert sum(report["choices"].values()) == 18
    # judged without a lease, every rater saw the stored order: A is what was shown first
    assert report["position_bias"]["first_shown_won"] == report["choices"]["a"]


def test_agreement_without_repeated_judgements_is_undefined_with_a_reason(api, people, project):
    made = pair(project, people["admin"])
    judgement_submit(pair_id=made.pk, rater=people["expert"], choice="A")
    report = api(people["admin"]).get(f"/api/projects/{project.pk}/preference-agreement/").json()
    assert report["alpha"] is None and "fewer than 2 units" in report["reason"]


def test_the_pairwise_round_reads_the_candidates_win_rate_and_lower_bound(people, project):
    from review.preference.selectors import pairs_head_to_head, pairs_progress

    judges = raters(project, 1)
    play(project, people["admin"], judges, "cand", "prod", ["a", "a", "a", "b", "tie"])
    from review.models import Pair

    ids = list(Pair.objects.values_list("pk", flat=True))

    result = pairs_head_to_head(pair_ids=ids, model_a="cand", model_b="prod")

    assert (result["wins"], result["losses"], result["ties"]) == (3, 1, 1)
    assert result["win_rate"] == pytest.approx(3.5 / 5)
    assert result["ci_low"] == pytest.approx(wilson_interval(3.5, 5)[0])
    assert set(pairs_progress(pair_ids=ids).values()) == {1}
