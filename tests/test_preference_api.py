"""Compare and rank tasks by API: who may do what, the queues (overlap, leases, no self-judging), blind
mode, the order shown and the order stored, and every bad input named."""

import pytest

from review.models import Judgement, PairAssignment, RankAssignment, Ranking
from review.preference.services import pair_register
from tests.factories import MembershipFactory, UserFactory
from tests.test_preference_support import judge, next_pair, next_rank, pair, rank_set, responses

pytestmark = pytest.mark.django_db


# --- who may do what -------------------------------------------------------------------------------------

JUDGES = ["expert", "domain_reviewer", "admin"]


@pytest.mark.parametrize(
    "who, status",
    [
        ("expert", 201),
        ("domain_reviewer", 201),
        ("admin", 201),
        ("staff", 201),
        ("annotator", 403),
        ("outsider", 404),
    ],
)
def test_who_may_judge_a_pair(api, people, project, who, status):
    made = pair(project, people["admin"])
    assert judge(api, people[who], made.pk, "A").status_code == status


@pytest.mark.parametrize(
    "who, status",
    [("expert", 201), ("domain_reviewer", 201), ("admin", 201), ("annotator", 403), ("outsider", 404)],
)
def test_who_may_rank_a_set(api, people, project, who, status):
    made = rank_set(project, people["admin"])
    order = sorted(made.responses.values_list("pk", flat=True))
    answer = api(people[who]).post(f"/api/rank-sets/{made.pk}/rankings/", {"order": order}, format="json")
    assert answer.status_code == status


@pytest.mark.parametrize(
    "who, compare, rank",
    [
        ("expert", 200, 200),
        ("domain_reviewer", 200, 200),
        ("admin", 200, 200),
        ("annotator", 403, 403),
        ("outsider", 404, 404),
    ],
)
def test_who_may_claim_from_the_compare_and_rank_queues(api, people, project, who, compare, rank):
    pair(project, people["admin"])
    rank_set(project, people["admin"])
    assert next_pair(api, people[who], project).status_code == compare
    assert next_rank(api, people[who], project).status_code == rank
    assert api(people[who]).post(f"/api/projects/{project.pk}/compare/next/").status_code == compare


@pytest.mark.parametrize(
    "path",
    [
        "leaderboard/",
        "preference-agreement/",
        "preference-export/?format=trl_conversational",
        "preference-export/?format=llamafactory_alpaca&part=dataset_info",
    ],
)
@pytest.mark.parametrize(
    "who, status", [("admin", 200), ("expert", 403), ("annotator", 403), ("outsider", 404)]
)
def test_reports_and_exports_are_for_admins(api, people, project, path, who, status):
    assert api(people[who]).get(f"/api/projects/{project.pk}/{path}").status_code == status


@pytest.mark.parametrize("who, status", [("admin", 201), ("expert", 403), ("outsider", 404)])
def test_only_admins_make_pairs_and_rank_sets(api, people, project, who, status):
    a, b, c = responses(project, people["admin"], ["One.", "Two.", "Three."])
    client = api(people[who])
    body = {"response_a": a.pk, "response_b": b.pk}
    assert client.post(f"/api/projects/{project.pk}/pairs/", body, format="json").status_code == status
    body = {"responses": [a.pk, b.pk, c.pk]}
    assert client.post(f"/api/projects/{project.pk}/rank-sets/", body, format="json").status_code == status
    body = {"source": "draft_vs_answer"}
    assert (
        client.post(f"/api/projects/{project.pk}/pairs/generate/", body, format="json").status_code == status
    )


@pytest.mark.parametrize(
    "who, status", [("admin", 200), ("expert", 200), ("annotator", 403), ("outsider", 404)]
)
def test_who_may_read_a_pair_and_a_rank_set(api, people, project, who, status):
    made, ranked = pair(project, people["admin"]), rank_set(project, people["admin"])
    assert api(people[who]).get(f"/api/pairs/{made.pk}/").status_code == status
    assert api(people[who]).get(f"/api/rank-sets/{ranked.pk}/").status_code == status


# --- the compare queue -----------------------------------------------------------------------------------


def test_tasks_next_serves_a_pair_blind_with_a_and_b_in_the_leases_order(api, people, project):
    made = pair(project, people["admin"], texts=("Reset it in Settings.", "Call us."))
    answer = next_pair(api, people["expert"], project)

    assert answer.status_code == 200
    task = answer.json()
    lease = PairAssignment.objects.get(pair=made, rater=people["expert"])
    first, second = (
        ("Call us.", "Reset it in Settings.") if lease.swapped else ("Reset it in Settings.", "Call us.")
    )
    assert (task["A"]["text"], task["B"]["text"]) == (first, second)
    assert task["blind"] is True
    assert "model" not in task["A"] and "origin" not in task["B"] and "source" not in task
    assert task["input"] == "How do I reset my password?"


def test_a_judgement_of_a_as_shown_is_stored_in_the_pairs_own_order(api, people, project):
    # given a pair whose lease shows response_b first
    made = pair(project, people["admin"])
    next_pair(api, people["expert"], project)
    PairAssignment.objects.filter(pair=made).update(swapped=True)

    # when the rater picks A (what they saw first), clearly, with a reason
    answer = judge(api, people["expert"], made.pk, "A", strength="clearly", reason="B is wrong")

    # then the stored choice is b, with the order seen and the lease gone
    assert answer.status_code == 201
    judgement = Judgement.objects.get(pair=made)
    assert (judgement.choice, judgement.swapped, judgement.strength, judgement.reason) == (
        "b",
        True,
        "clearly",
        "B is wrong",
    )
    assert not PairAssignment.objects.filter(pair=made).exists()


def test_the_order_is_drawn_per_lease(api, people, project):
    # given 40 pairs claimed by one rater one after the other
    for n in range(40):
        pair(project, people["admin"], texts=(f"Answer {n}a.", f"Answer {n}b."))
    swaps = []
    for _ in range(40):
        task = next_pair(api, people["expert"], project).json()
        swaps.append(PairAssignment.objects.get(pair_id=task["id"], rater=people["expert"]).swapped)
        judge(api, people["expert"], task["id"], "tie")
    # then both orders occur (all 40 the same would happen once in 2^39)
    assert 0 < sum(swaps) < 40


def test_pressing_next_again_returns_the_pair_held(api, people, project):
    pair(project, people["admin"])
    pair(project, people["admin"])
    first = next_pair(api, people["expert"], project).json()
    again = next_pair(api, people["expert"], project).json()
    assert again["id"] == first["id"] and again["A"] == first["A"]


def test_the_queue_hands_each_pair_to_overlap_many_distinct_raters(api, people, project):
    project.ratings_per_response = 2
    project.save()
    made = pair(project, people["admin"])
    raters = [people["expert"], people["domain_reviewer"], people["admin"]]

    claims = [next_pair(api, rater, project) for rater in raters]

    assert [c.status_code for c in claims] == [200, 200, 204]
    assert PairAssignment.objects.filter(pair=made).count() == 2


def test_a_judgement_beyond_the_overlap_is_409(api, people, project):
    project.ratings_per_response = 1
    project.save()
    made = pair(project, people["admin"])
    assert judge(api, people["expert"], made.pk, "B").status_code == 201
    answer = judge(api, people["domain_reviewer"], made.pk, "B")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "enough_judgements"


def test_a_lease_held_by_another_counts_against_the_overlap(api, people, project):
    project.ratings_per_response = 1
    project.save()
    made = pair(project, people["admin"])
    next_pair(api, people["expert"], project)
    answer = judge(api, people["domain_reviewer"], made.pk, "A")
    assert answer.status_code == 409
    assert judge(api, people["expert"], made.pk, "A").status_code == 201


def test_nobody_judges_a_pair_with_a_response_they_wrote(api, people, project):
    # given a human answer written by the expert against a model's
    mine, theirs = responses(
        project, people["admin"], ["My answer.", "The model's."], origin="human", author=people["expert"]
    )
    theirs.author, theirs.origin = None, "candidate"
    theirs.save()
    made = pair_register(project=project, response_a=mine, response_b=theirs)

    # then the queue does not offer it, and judging it anyway is refused
    assert next_pair(api, people["expert"], project).status_code == 204
    answer = judge(api, people["expert"], made.pk, "A")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "own_response"
    assert next_pair(api, people["domain_reviewer"], project).status_code == 200


def test_a_second_judgement_by_the_same_rater_is_400(api, people, project):
    made = pair(project, people["admin"])
    judge(api, people["expert"], made.pk, "A")
    answer = judge(api, people["expert"], made.pk, "B")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "already_judged"
    assert next_pair(api, people["expert"], project).status_code == 204


def test_a_closed_pair_leaves_the_queue_and_refuses_judgements(api, people, project):
    from review.preference.services import preference_close

    made = pair(project, people["admin"])
    preference_close(pair_ids=[made.pk])
    assert next_pair(api, people["expert"], project).status_code == 204
    answer = judge(api, people["expert"], made.pk, "A")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "pair_closed"


def test_a_pair_whose_response_is_closed_is_closed_too(api, people, project):
    from django.utils import timezone

    made = pair(project, people["admin"])
    made.response_b.closed_at = timezone.now()
    made.response_b.save()
    assert next_pair(api, people["expert"], project).status_code == 204
    assert judge(api, people["expert"], made.pk, "A").status_code == 409


@pytest.mark.parametrize(
    "body, message",
    [
        ({"choice": "C"}, "choice"),
        ({"choice": "tie", "strength": "clearly"}, "strength: a tie has no strength"),
        ({"choice": "A", "strength": "hugely"}, "strength"),
        ({"choice": "A", "colour": "red"}, "colour"),
        ({}, "choice"),
    ],
)
def test_bad_judgements_are_400_naming_the_field(api, people, project, body, message):
    made = pair(project, people["admin"])
    answer = api(people["expert"]).post(f"/api/pairs/{made.pk}/judgements/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(message)
    assert not Judgement.objects.exists()


def test_admins_see_origin_model_and_votes(api, people, project):
    made = pair(project, people["admin"], models=("v1", "v2"))
    judge(api, people["expert"], made.pk, "A")
    detail = api(people["admin"]).get(f"/api/pairs/{made.pk}/").json()
    assert (detail["response_a"]["model"], detail["response_b"]["model"]) == ("v1", "v2")
    assert sum(detail["votes"].values()) == 1


def test_an_open_rubric_shows_raters_origin_and_model(api, people, project):
    from review.models import Rubric

    Rubric.objects.create(project=project, version=1, blind=False)
    pair(project, people["admin"], models=("v1", "v2"))
    task = next_pair(api, people["expert"], project).json()
    assert task["blind"] is False
    assert {task["A"]["model"], task["B"]["model"]} == {"v1", "v2"}


def test_a_pair_compares_answers_to_the_same_conversation(api, people, project):
    a = responses(project, people["admin"], ["Yes."], question="Is it open?")[0]
    b = responses(project, people["admin"], ["No."], question="Is it closed?")[0]
    answer = api(people["admin"]).post(
        f"/api/projects/{project.pk}/pairs/", {"response_a": a.pk, "response_b": b.pk}, format="json"
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "different_conversations"


def test_registering_the_same_two_responses_again_returns_the_pair(api, people, project):
    made = pair(project, people["admin"])
    again = pair_register(project=project, response_a=made.response_b, response_b=made.response_a)
    assert again.pk == made.pk


# --- the rank queue --------------------------------------------------------------------------------------


def test_a_ranking_writes_the_judgement_it_implies_on_every_pair(api, people, project):
    made = rank_set(project, people["admin"], texts=("Worst.", "Best.", "Middle."))
    worst, best, middle = sorted(made.responses.values_list("pk", flat=True))
    task = next_rank(api, people["expert"], project).json()
    assert [c["id"] for c in task["candidates"]] == RankAssignment.objects.get(rank_set=made).shown
    assert "model" not in task["candidates"][0]

    answer = api(people["expert"]).post(
        f"/api/rank-sets/{made.pk}/rankings/", {"order": [best, middle, worst]}, format="json"
    )

    assert answer.status_code == 201 and answer.json()["judgements"] == 3
    stored = {(j.pair.response_a_id, j.pair.response_b_id): j.choice for j in Judgement.objects.all()}
    assert stored == {(worst, best): "b", (worst, middle): "b", (best, middle): "a"}
    assert Ranking.objects.get().order == [best, middle, worst]


@pytest.mark.parametrize(
    "order, reason",
    [
        ("ids", "order"),
        ("short", "missing"),
        ("dup", "listed twice"),
        ("unknown", "not in this set"),
    ],
)
def test_a_bad_order_is_400_naming_what_is_wrong(api, people, project, order, reason):
    made = rank_set(project, people["admin"])
    ids = sorted(made.responses.values_list("pk", flat=True))
    order = {"ids": "abc", "short": ids[:2], "dup": [ids[0], ids[0], ids[1]], "unknown": [*ids[:2], 999_999]}[
        order
    ]
    answer = api(people["expert"]).post(
        f"/api/rank-sets/{made.pk}/rankings/", {"order": order}, format="json"
    )
    assert answer.status_code == 400
    assert "order" in answer.json()["error"]["message"] and reason in answer.json()["error"]["message"]
    assert not Ranking.objects.exists()


def test_rank_set_pairs_are_not_served_by_the_compare_queue(api, people, project):
    made = rank_set(project, people["admin"])
    assert next_pair(api, people["expert"], project).status_code == 204
    answer = judge(api, people["expert"], made.pairs.first().pk, "A")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "ranked_pair"


def test_the_rank_queue_respects_the_overlap_and_refuses_a_second_ranking(api, people, project):
    project.ratings_per_response = 1
    project.save()
    made = rank_set(project, people["admin"])
    assert next_rank(api, people["expert"], project).status_code == 200
    assert next_rank(api, people["domain_reviewer"], project).status_code == 204
    order = sorted(made.responses.values_list("pk", flat=True))
    assert (
        api(people["expert"])
        .post(f"/api/rank-sets/{made.pk}/rankings/", {"order": order}, format="json")
        .status_code
        == 201
    )
    again = api(people["expert"]).post(f"/api/rank-sets/{made.pk}/rankings/", {"order": order}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "already_ranked"


def test_a_rank_set_holds_two_to_five_responses(api, people, project):
    many = responses(project, people["admin"], [f"Answer {n}." for n in range(6)])
    answer = api(people["admin"]).post(
        f"/api/projects/{project.pk}/rank-sets/", {"responses": [r.pk for r in many]}, format="json"
    )
    assert answer.status_code == 400 and answer.json()["error"]["message"].startswith("responses")


@pytest.mark.django_db(transaction=True)
def test_concurrent_raters_never_exceed_the_overlap(people, project):
    """Ten raters claim at once from threads; each pair goes to at most `overlap` of them."""
    import threading

    from django.db import connection

    from review.preference.queue import compare_claim_next

    project.ratings_per_response = 2
    project.save()
    for n in range(3):
        pair(project, people["admin"], texts=(f"{n} a.", f"{n} b."))
    raters = []
    for i in range(10):
        user = UserFactory(username=f"judge{i}")
        MembershipFactory(project=project, user=user, role="expert")
        raters.append(user)
    barrier = threading.Barrier(len(raters))
    got = {}

    def claim(user):
        barrier.wait()
        try:
            got[user.pk] = compare_claim_next(project=project, user=user)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(u,)) for u in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from django.db.models import Count

    from review.models import Pair

    held = list(Pair.objects.annotate(n=Count("assignments")).values_list("n", flat=True))
    assert max(held) <= 2  # under contention no pair went to more raters than the overlap
    # A claim that found every candidate locked by another claim (SKIP LOCKED) got nothing; asked again,
    # the raters fill the slots that are left, and no slot was lost.
    for user in raters:
        if got.get(user.pk) is None:
            compare_claim_next(project=project, user=user)
    held = list(Pair.objects.annotate(n=Count("assignments")).values_list("n", flat=True))
    assert sorted(held) == [2, 2, 2]
