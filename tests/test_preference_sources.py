"""Where pairs come from: an item's draft against its approved answer, the candidates of one item, and
the function the training layer calls to register two model versions' outputs."""

import pytest

from review.models import Pair, PairSource, RankSet, Response
from review.preference.services import candidates_from_items, pair_register, pairs_from_drafts_vs_answers
from tests.test_preference_support import approve_from_draft, drafted_items, judge, next_pair, responses

pytestmark = pytest.mark.django_db

SYSTEM = "You are the help desk of Nordlicht Telecom."
TURNS = [
    {"role": "user", "content": "My router blinks red."},
    {"role": "assistant", "content": "Unplug it for ten seconds."},
    {"role": "user", "content": "Still red."},
]


def test_an_approved_item_makes_a_pair_of_its_draft_and_its_approved_answer(people, project):
    # given a three-turn item drafted by v1 and approved with an answer the annotator rewrote
    rows = [{"messages": TURNS, "system": SYSTEM, "metadata": {"category": "network"}}]
    (item,) = drafted_items(project, people["admin"], rows, candidates=[("Try again later.", 0.8)])
    approve_from_draft(project, people, ["A technician will check your line today."])

    made = pairs_from_drafts_vs_answers(project=project, actor=people["admin"])

    # then one pair: the draft (v1) against the human answer, on the item's whole conversation
    assert made == {"pairs_created": 1, "rank_sets_created": 0, "items_skipped": 0}
    pair = Pair.objects.get()
    draft, answer = pair.response_a, pair.response_b
    assert (pair.source, pair.item_id, pair.metadata) == ("draft_vs_answer", item.pk, {"category": "network"})
    assert (draft.origin, draft.model, draft.text) == ("draft", "v1", "Try again later.")
    assert (answer.origin, answer.text) == ("human", "A technician will check your line today.")
    assert (pair.model_a, pair.model_b) == ("v1", "(human)")
    assert draft.messages == TURNS and draft.system == SYSTEM and answer.messages == TURNS
    # and the answer's author is its author: the annotator, who cannot judge it
    assert answer.author == people["annotator"]


def test_the_answers_author_is_not_offered_the_pair_others_are(api, people, project):
    from annotation.models import Membership

    drafted_items(project, people["admin"], [{"input": "Hello?"}])
    approve_from_draft(project, people, ["Hello! How can I help?"])
    pairs_from_drafts_vs_answers(project=project, actor=people["admin"])
    # the annotator becomes an expert too: still not the judge of their own answer
    Membership.objects.create(project=project, user=people["annotator"], role="expert")

    assert next_pair(api, people["annotator"], project).status_code == 204
    pair = Pair.objects.get()
    assert judge(api, people["annotator"], pair.pk, "A").json()["error"]["code"] == "own_response"
    assert next_pair(api, people["expert"], project).status_code == 200


def test_an_answer_that_is_the_draft_unchanged_makes_no_pair_and_no_item_gets_two(people, project):
    drafted_items(
        project, people["admin"], [{"input": "One?"}, {"input": "Two?"}], candidates=[("Same.", 0.9)]
    )
    approve_from_draft(project, people, ["Same.", "Different."])

    first = pairs_from_drafts_vs_answers(project=project, actor=people["admin"])
    again = pairs_from_drafts_vs_answers(project=project, actor=people["admin"])

    assert (first["pairs_created"], first["items_skipped"]) == (1, 1)
    assert again["pairs_created"] == 0
    assert Pair.objects.count() == 1


def test_an_items_candidates_become_a_rank_set_in_the_models_order(people, project):
    candidates = [("Best.", 0.9), ("Second.", 0.7), ("Best.", 0.6), ("Third.", 0.5)]
    (item,) = drafted_items(
        project, people["admin"], [{"input": "Q?", "metadata": {"lang": "en"}}], candidates=candidates
    )

    made = candidates_from_items(project=project, actor=people["admin"])

    # then the distinct texts (a duplicate candidate once) form a set of three with its three pairs
    assert made == {"pairs_created": 0, "rank_sets_created": 1, "items_skipped": 0}
    rank_set = RankSet.objects.get()
    assert sorted(rank_set.responses.values_list("text", flat=True)) == ["Best.", "Second.", "Third."]
    assert rank_set.pairs.count() == 3 and rank_set.item == item and rank_set.metadata == {"lang": "en"}
    assert candidates_from_items(project=project, actor=people["admin"])["rank_sets_created"] == 0


def test_candidates_can_also_become_pairs_and_an_item_with_one_candidate_is_skipped(people, project):
    drafted_items(
        project, people["admin"], [{"input": "A?"}], candidates=[("x.", 0.9), ("y.", 0.8), ("z.", 0.7)]
    )
    drafted_items(project, people["admin"], [{"input": "B?"}], version_name="v2", candidates=[("only.", 0.9)])

    made = candidates_from_items(project=project, actor=people["admin"], as_rank=False)

    assert made["pairs_created"] == 3
    assert Pair.objects.filter(rank_set__isnull=True, source=PairSource.CANDIDATES).count() == 3


def test_the_training_layer_registers_two_model_versions_outputs_as_a_pair(people, project):
    # as human_eval would: two responses to a frozen sample, no actor (the system)
    candidate, deployed = responses(
        project, people["admin"], ["New model says.", "Old model says."], models=["v2", "v1"]
    )

    pair = pair_register(
        project=project,
        response_a=candidate,
        response_b=deployed,
        source="model_versions",
        metadata={"round": 7},
    )

    assert (pair.source, pair.metadata, pair.created_by) == ("model_versions", {"round": 7}, None)
    assert {pair.model_a, pair.model_b} == {"v1", "v2"}
    assert Response.objects.count() == 2


def test_draft_pairs_are_for_admins(people, project):
    from core.errors import NotAllowed

    with pytest.raises(NotAllowed):
        pairs_from_drafts_vs_answers(project=project, actor=people["expert"])
