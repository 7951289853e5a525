"""Gold and attention checks: marking and importing, mixing into the queues, scoring, standings, lifting."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.exporting.services import export_samples
from annotation.importing import import_job_run
from annotation.models import AuditEvent, Item, ItemStatus, Revision, Stage
from annotation.workflow.transitions import item_claim_next, item_submit
from review.decisions.services import item_review
from review.gold import services as gold
from review.gold.selectors import gold_accuracy_by_person
from review.math.gold import annotation_score, rolling_accuracy
from review.models import (
    GoldAttempt,
    GoldStanding,
    GoldStandingState,
    GoldTask,
    Judgement,
    Pair,
    Rating,
    ReviewDecision,
)
from review.preference.services import pair_register, pairs_from_drafts_vs_answers
from review.rating.services import response_create
from tests.factories import ItemFactory, MembershipFactory, UserFactory
from tests.workflow_helpers import annotate
from training.snapshots import approved_unsnapshotted, snapshot_create

pytestmark = pytest.mark.django_db

GOLD_ANSWER = "Open Settings, choose Security and press Reset password."


def gold_project(project, **settings):
    defaults = {"gold_rate": 1.0, "gold_window": 2, "gold_min_accuracy": 0.6, "gold_action": "pause"}
    for name, value in {**defaults, **settings}.items():
        setattr(project, name, value)
    project.save()
    return project


def mark(api, people, project, **body):
    answer = api(people["admin"]).post(f"/api/projects/{project.pk}/gold/", body, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()


def gold_item(api, people, project, **body):
    item = ItemFactory(project=project, input="How do I reset my password?")
    mark(api, people, project, item=item.pk, expected_text=GOLD_ANSWER, **body)
    return item


def claim_api(api, user, project, stage):
    return api(user).post(f"/api/projects/{project.pk}/tasks/next/", {"stage": stage}, format="json")


def submit_api(api, user, task, text):
    item = task["item"]
    body = {"text": text, "version": item["version"]}
    return api(user).post(f"/api/items/{item['id']}/submit/", body, format="json")


def standing(project, user):
    return GoldStanding.objects.get(project=project, user=user)


# --- the pure parts -------------------------------------------------------------------------------------


def test_annotation_similarity_counts_chinese_characters_as_words():
    right, similarity = annotation_score("请打开设置，选择安全。", "请打开设置 选择安全", min_similarity=0.9)
    assert right and similarity == 1.0
    wrong, low = annotation_score("我不知道", "请打开设置选择安全", min_similarity=0.5)
    assert not wrong and low < 0.5


def test_rolling_accuracy_waits_for_a_full_window():
    assert rolling_accuracy([True], window=2) == (None, 1)
    assert rolling_accuracy([False, True, True, True], window=2) == (0.5, 2)


# --- marking and permissions ----------------------------------------------------------------------------


def test_only_project_admins_mark_gold_and_see_the_gold_tasks(api, people, project):
    item = ItemFactory(project=project)
    body = {"item": item.pk, "expected_text": GOLD_ANSWER}
    for role in ("annotator", "expert", "domain_reviewer"):
        assert (
            api(people[role]).post(f"/api/projects/{project.pk}/gold/", body, format="json").status_code
            == 403
        )
        assert api(people[role]).get(f"/api/projects/{project.pk}/gold/").status_code == 403
    assert api(people["outsider"]).get(f"/api/projects/{project.pk}/gold/").status_code == 404
    task = mark(api, people, project, **body)
    assert task["kind"] == "annotate" and task["expected_text"] == GOLD_ANSWER
    assert Item.objects.get(pk=item.pk).is_gold
    listed = api(people["admin"]).get(f"/api/projects/{project.pk}/gold/").json()
    assert [t["item"] for t in listed["tasks"]] == [item.pk]
    assert AuditEvent.objects.filter(action="gold.mark", target_id=str(task["id"])).exists()


def test_marking_refuses_what_cannot_be_a_check(api, people, project):
    bare = ItemFactory(project=project)
    answer = api(people["admin"]).post(f"/api/projects/{project.pk}/gold/", {"item": bare.pk}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["message"].startswith("expected_text")
    approved = ItemFactory(project=project, status=ItemStatus.APPROVED, reference_output="x")
    answer = api(people["admin"]).post(
        f"/api/projects/{project.pk}/gold/", {"item": approved.pk}, format="json"
    )
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_markable"
    assert not Item.objects.get(pk=approved.pk).is_gold


def test_nobody_but_admins_sees_which_items_are_gold(api, people, project):
    item = gold_item(api, people, project)
    for role in ("annotator", "expert"):
        shown = api(people[role]).get(f"/api/items/{item.pk}/").json()
        assert "gold" not in json.dumps(shown).lower()
    listed = api(people["expert"]).get(f"/api/projects/{project.pk}/items/").json()
    assert "gold" not in json.dumps(listed).lower()


# --- mixing into the queues -----------------------------------------------------------------------------


def test_gold_items_never_come_from_the_normal_queue(api, people, project):
    # given gold mixing off and only a gold item waiting
    gold_item(api, people, project)
    # when the annotator asks for work (the single-statement path serves projects without gold)
    answer = claim_api(api, people["annotator"], project, "annotate")
    # then there is nothing: gold comes only through the gold draw
    assert answer.status_code == 204


def test_gold_is_mixed_in_at_the_project_rate(api, people, project):
    # given 15 gold items, 40 normal ones and a gold rate of 0.3
    gold_project(project, gold_rate=0.3, gold_window=100)
    gold_ids = {gold_item(api, people, project).pk for _ in range(15)}
    ItemFactory.create_batch(40, project=project)
    gold._random.seed(18)  # a reproducible draw
    served = []
    for _ in range(40):
        item = item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE)
        served.append(item.pk in gold_ids)
        item_submit(item_id=item.pk, user=people["annotator"], text=GOLD_ANSWER, version=item.version)
    # then about 30 % of the claims were gold (a binomial draw of 40: well inside 4..20)
    assert 4 <= sum(served) <= 20
    assert GoldAttempt.objects.filter(user=people["annotator"]).count() == sum(served)
    # and each gold item was answered by this person at most once
    assert len({a.gold_task_id for a in GoldAttempt.objects.all()}) == sum(served)


def test_a_gold_task_answers_like_a_normal_one_key_by_key(api, people, project, client):
    # given one gold item and one normal item, alike
    gold_project(project, gold_window=100)
    gold_one = gold_item(api, people, project)
    normal = ItemFactory(project=project, input="How do I change my e-mail address?")
    annotator = people["annotator"]
    # when the annotator claims both (the gold draw first, then the queue)
    gold_task = claim_api(api, annotator, project, "annotate").json()
    gold_submitted = submit_api(api, annotator, gold_task, "Press reset.").json()
    project.gold_rate = 0.0
    project.save()
    normal_task = claim_api(api, annotator, project, "annotate").json()
    assert {gold_task["item"]["id"], normal_task["item"]["id"]} == {gold_one.pk, normal.pk}
    normal_submitted = submit_api(api, annotator, normal_task, "Press change.").json()

    # then the two answers have the same keys with the same kinds of values, and equal values but for
    # what is the item's own (id, text, times)
    own = {
        "id",
        "input",
        "messages",
        "content_hash",
        "lease_expires_at",
        "created_at",
        "updated_at",
        "answer",
    }

    def compare(a, b, path=""):
        assert type(a) is type(b), path
        if isinstance(a, dict):
            assert a.keys() == b.keys(), path
            for key in a:
                if key not in own:
                    compare(a[key], b[key], f"{path}.{key}")
        elif isinstance(a, list):
            assert len(a) == len(b), path
            for x, y in zip(a, b, strict=True):
                compare(x, y, path)
        else:
            assert a == b, path

    compare(gold_task, normal_task)
    compare(gold_submitted, normal_submitted)
    assert gold_submitted["status"] == normal_submitted["status"] == ItemStatus.SUBMITTED
    # and the gold item waits for the next person, with no revision of the answer
    assert Item.objects.get(pk=gold_one.pk).status == ItemStatus.NEW
    assert not Revision.objects.filter(item=gold_one).exists()


def test_the_workbench_page_of_a_gold_task_is_the_page_of_a_normal_one(api, people, project, client):
    gold_project(project, gold_window=100)
    gold_one = gold_item(api, people, project)
    normal = ItemFactory(project=project, input="How do I change my e-mail address?")
    client.force_login(people["annotator"])

    def page_of(item):
        client.post(f"/projects/{project.pk}/work/annotate/")
        held = Item.objects.get(leased_by=people["annotator"])
        assert held.pk == item.pk
        html = client.get(f"/projects/{project.pk}/work/annotate/").content.decode()
        item_submit(item_id=held.pk, user=people["annotator"], text="An answer.", version=held.version)
        html = html.replace(held.input, "QUESTION").replace(f"/items/{held.pk}/", "/items/ID/")
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
        html = re.sub(r'"X-CSRFToken": "[^"]+"', "", html)
        html = re.sub(r"\d{4}-\d\d-\d\dT[\d:.+-]+(Z)?", "TIME", html)
        html = re.sub(r'data-item(-id)?="\d+"', "", html)
        return re.sub(r"#\d+", "#ID", html)

    gold_html = page_of(gold_one)
    project.gold_rate = 0.0
    project.save()
    normal_html = page_of(normal)
    assert "gold" not in gold_html.lower()
    assert gold_html == normal_html


# --- scoring each kind ----------------------------------------------------------------------------------


def test_an_annotation_is_right_within_the_similarity_threshold(api, people, project):
    gold_project(project, gold_window=100)
    gold_item(api, people, project, min_similarity=0.8)
    second = UserFactory(username="annotator2")
    MembershipFactory(project=project, user=second, role="annotator")
    annotate(project, people["annotator"], text="Open Settings, choose Security, press Reset password!")
    annotate(project, second, text="Call the help desk.")
    right, wrong = GoldAttempt.objects.order_by("pk")
    assert right.correct and right.score >= 0.8
    assert not wrong.correct and wrong.score < 0.8


def test_a_review_check_scores_the_decision_and_writes_none(api, people, project):
    # given a review check of an imported answer that ought to be rejected, in the expert queue
    gold_project(project, gold_window=100)
    item = ItemFactory(project=project, reference_output="Just restart your computer.")
    task = mark(api, people, project, item=item.pk, expected_decision="reject", stage="expert")
    assert Item.objects.get(pk=item.pk).status == ItemStatus.SUBMITTED
    second = UserFactory(username="expert2")
    MembershipFactory(project=project, user=second, role="expert")
    # when one expert approves it and another rejects it
    claimed = item_claim_next(project=project, user=people["expert"], stage=Stage.EXPERT)
    shown = item_review(
        item_id=claimed.pk, user=people["expert"], decision="approve", version=claimed.version
    )
    claimed = item_claim_next(project=project, user=second, stage=Stage.EXPERT)
    item_review(
        item_id=claimed.pk, user=second, decision="reject", version=claimed.version, comment="Not an answer."
    )
    # then the approval was wrong and the rejection right; the item waits for the next expert
    attempts = {a.user_id: a.correct for a in GoldAttempt.objects.filter(gold_task_id=task["id"])}
    assert attempts == {people["expert"].pk: False, second.pk: True}
    assert shown.status == ItemStatus.DOMAIN_REVIEW  # as an approval would leave a normal item
    assert Item.objects.get(pk=item.pk).status == ItemStatus.SUBMITTED
    assert not ReviewDecision.objects.filter(item=item).exists()


def test_a_rating_check_is_right_within_the_ranges_and_is_no_rating(api, people, project):
    gold_project(project, gold_window=100)
    response = response_create(
        project=project, actor=people["admin"], input="Hi?", text="Hello!", origin="candidate"
    )
    mark(
        api,
        people,
        project,
        response=response.pk,
        expected_scores={"accuracy": [4, 5]},
        expected_weighted=[3, 5],
    )
    expert, reviewer = people["expert"], people["domain_reviewer"]
    for user, scores in ((expert, {"accuracy": 5, "politeness": 4, "usefulness": 4}),
                         (reviewer, {"accuracy": 2, "politeness": 4, "usefulness": 4})):  # fmt: skip
        task = claim_api(api, user, project, "rate").json()
        assert task["id"] == response.pk
        answer = api(user).post(f"/api/responses/{response.pk}/ratings/", {"scores": scores}, format="json")
        assert answer.status_code == 201, answer.json()
        assert set(answer.json()) == {
            "id",
            "response",
            "rater",
            "rubric_version",
            "scores",
            "weighted_score",
            "created_at",
        }
    attempts = {a.user_id: a.correct for a in GoldAttempt.objects.all()}
    assert attempts == {expert.pk: True, reviewer.pk: False}
    assert not Rating.objects.exists()  # never in agreement, scores or exports


def test_a_compare_check_is_right_with_the_expected_choice(api, people, project):
    gold_project(project, gold_window=100)
    better = response_create(
        project=project, actor=people["admin"], input="Hi?", text="Hello! How can I help?", origin="candidate"
    )
    worse = response_create(
        project=project, actor=people["admin"], input="Hi?", text="What.", origin="candidate"
    )
    pair = pair_register(project=project, response_a=better, response_b=worse)
    mark(api, people, project, pair=pair.pk, expected_choice="a" if pair.response_a_id == better.pk else "b")
    user = people["expert"]
    task = api(user).post(f"/api/projects/{project.pk}/compare/next/", format="json").json()
    shown_better = "A" if task["A"]["text"] == better.text else "B"
    answer = api(user).post(f"/api/pairs/{pair.pk}/judgements/", {"choice": shown_better}, format="json")
    assert answer.status_code == 201, answer.json()
    assert GoldAttempt.objects.get(user=user).correct
    assert not Judgement.objects.exists()


# --- out of the data -----------------------------------------------------------------------------------


def test_gold_work_is_never_exported_snapshotted_or_paired(api, people, project):
    # given one normal approved item, and a gold item that reached approved (as an admin's SQL might)
    gold_project(project, review_tiers=1, gold_rate=0.0)
    ItemFactory(project=project)
    annotate(project, people["annotator"])
    gold_one = gold_item(api, people, project)
    Item.objects.filter(pk=gold_one.pk).update(status=ItemStatus.APPROVED)
    # then exports, snapshots and the training count see only the normal one
    assert [s["metadata"]["id"] for s in export_samples(project=project)] != []
    assert gold_one.pk not in [s["metadata"]["id"] for s in export_samples(project=project)]
    assert list(approved_unsnapshotted(project_id=project.pk).values_list("is_gold", flat=True)) == [False]
    snapshot = snapshot_create(project=project)
    assert gold_one.pk not in set(snapshot.samples.values_list("item_id", flat=True))
    # and no preference pair is made from it
    Revision.objects.filter(item__project=project).update(draft=None)
    made = pairs_from_drafts_vs_answers(project=project, actor=people["admin"])
    assert all(p.item_id != gold_one.pk for p in Pair.objects.all()) and made is not None


def test_a_gold_submission_is_never_approved(api, people, project):
    gold_project(project, review_tiers=1, gold_window=100)
    item = gold_item(api, people, project)
    annotate(project, people["annotator"], text=GOLD_ANSWER)
    assert Item.objects.get(pk=item.pk).status == ItemStatus.NEW
    assert list(export_samples(project=project)) == []


# --- standings ------------------------------------------------------------------------------------------


def fail_twice(api, people, project, user=None):
    user = user or people["annotator"]
    for _ in range(2):
        gold_item(api, people, project)
    for _ in range(2):
        annotate(project, user, text="No idea.")


def test_a_person_under_the_threshold_is_paused_with_a_clear_code(api, people, project):
    gold_project(project, gold_action="pause")
    fail_twice(api, people, project)
    assert standing(project, people["annotator"]).state == GoldStandingState.PAUSED
    ItemFactory(project=project)
    answer = claim_api(api, people["annotator"], project, "annotate")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "gold_paused"
    assert "60%" in answer.json()["error"]["message"]
    # pausing is per project: the same person elsewhere is not paused
    other = gold_project(type(project).objects.create(name="Other", slug="other", created_by=people["admin"]))
    MembershipFactory(project=other, user=people["annotator"], role="annotator")
    ItemFactory(project=other)
    assert claim_api(api, people["annotator"], other, "annotate").status_code == 200


def test_paused_raters_get_nothing_from_the_rate_and_compare_queues(api, people, project):
    gold_project(project)
    user = people["expert"]
    GoldStanding.objects.create(project=project, user=user, state=GoldStandingState.PAUSED, reason="r.")
    for stage in ("rate", "compare", "expert"):
        answer = claim_api(api, user, project, stage)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "gold_paused", stage


def test_a_warned_person_reads_it_on_their_next_page_once(api, people, project, client):
    gold_project(project, gold_action="warn")
    fail_twice(api, people, project)
    assert standing(project, people["annotator"]).state == GoldStandingState.WARNED
    client.force_login(people["annotator"])
    first = client.get(f"/projects/{project.pk}/").content.decode()
    assert "Please take more care" in first
    assert "Please take more care" not in client.get(f"/projects/{project.pk}/").content.decode()
    # a warned person still gets work
    ItemFactory(project=project)
    assert claim_api(api, people["annotator"], project, "annotate").status_code == 200


def test_extra_review_sends_their_work_to_an_expert_first(api, people, project):
    # given a two-tier project (annotation, then final review) and a person sent to extra review
    gold_project(project, gold_action="extra_review", review_tiers=2)
    fail_twice(api, people, project)
    assert standing(project, people["annotator"]).state == GoldStandingState.EXTRA_REVIEW
    # when they submit normal work
    item = ItemFactory(project=project)
    project.gold_rate = 0.5
    project.save()
    gold._random.seed(1)
    submitted = None
    for _ in range(5):
        claimed = item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE)
        if claimed and claimed.pk == item.pk:
            submitted = item_submit(
                item_id=item.pk, user=people["annotator"], text="x", version=claimed.version
            )
            break
    # then it goes to an expert, which the project's tiers would skip
    assert submitted is not None and submitted.status == ItemStatus.SUBMITTED


def test_extra_review_sends_a_final_approval_to_a_spot_check(api, people, project):
    gold_project(project, gold_action="extra_review", review_tiers=3, gold_rate=0.0)
    ItemFactory(project=project)
    annotate(project, people["annotator"])
    claimed = item_claim_next(project=project, user=people["expert"], stage=Stage.EXPERT)
    item_review(item_id=claimed.pk, user=people["expert"], decision="approve", version=claimed.version)
    GoldStanding.objects.create(
        project=project, user=people["domain_reviewer"], state=GoldStandingState.EXTRA_REVIEW
    )
    project.gold_rate = 0.1
    project.save()
    claimed = item_claim_next(project=project, user=people["domain_reviewer"], stage=Stage.DOMAIN)
    done = item_review(
        item_id=claimed.pk, user=people["domain_reviewer"], decision="approve", version=claimed.version
    )
    assert done.status == ItemStatus.SPOT_CHECK


def test_an_admin_lifts_a_pause_and_the_accuracy_starts_afresh(api, people, project):
    gold_project(project, gold_action="pause")
    fail_twice(api, people, project)
    user = people["annotator"]
    url = f"/api/projects/{project.pk}/gold/people/{user.pk}/lift/"
    assert api(people["expert"]).post(url, {}, format="json").status_code == 403
    listed = api(people["admin"]).get(f"/api/projects/{project.pk}/gold/").json()["people"]
    assert listed[0]["username"] == "annotator" and listed[0]["state"] == "paused" and listed[0]["reason"]
    answer = api(people["admin"]).post(url, {"comment": "Talked it through."}, format="json")
    assert answer.status_code == 200 and answer.json()["state"] == "ok"
    assert answer.json()["lifted_by"] == "admin"
    event = AuditEvent.objects.get(action="gold.lift")
    assert event.actor == people["admin"] and event.from_state == "paused"
    assert event.data["comment"] == "Talked it through."
    # the old wrong answers no longer count: one more wrong one is not a full window
    gold_item(api, people, project)
    annotate(project, user, text="No idea.")
    assert standing(project, user).state == GoldStandingState.OK
    assert api(people["admin"]).post(url, {}, format="json").json()["error"]["code"] == "nothing_to_lift"


def test_gold_accuracy_by_person(api, people, project):
    gold_project(project, gold_window=100)
    for _ in range(3):
        gold_item(api, people, project)
    annotate(project, people["annotator"], text=GOLD_ANSWER)
    annotate(project, people["annotator"], text="No idea.")
    annotate(project, people["annotator"], text=GOLD_ANSWER)
    assert gold_accuracy_by_person(project=project) == {
        people["annotator"].pk: {"correct": 2, "total": 3, "accuracy": 2 / 3}
    }


def test_the_gold_page_is_for_admins(people, project, client):
    client.force_login(people["expert"])
    assert client.get(f"/projects/{project.pk}/gold/").status_code == 403
    client.force_login(people["admin"])
    assert client.get(f"/projects/{project.pk}/gold/").status_code == 200


# --- import ---------------------------------------------------------------------------------------------


def test_imported_records_with_a_gold_key_become_gold_tasks(api, people, project):
    records = [
        {"input": "Reset password?", "gold": True, "gold_answer": GOLD_ANSWER, "category": "account"},
        {
            "input": "Refund?",
            "output": "Never.",
            "gold": "yes",
            "gold_decision": "reject",
            "gold_stage": "domain",
        },
        {"input": "Opening hours?", "output": "9 to 5."},
    ]
    content = "\n".join(json.dumps(r) for r in records).encode()
    client = api(people["admin"])
    upload = client.post(
        f"/api/projects/{project.pk}/imports/",
        {"file": SimpleUploadedFile("g.jsonl", content)},
        format="multipart",
    )
    assert upload.status_code == 202, upload.json()
    import_job_run(job_id=upload.json()["id"])
    assert client.get(f"/api/imports/{upload.json()['id']}/").json()["status"] == "succeeded"
    tasks = {t.item.input: t for t in GoldTask.objects.select_related("item")}
    assert (
        tasks["Reset password?"].kind == "annotate" and tasks["Reset password?"].expected_text == GOLD_ANSWER
    )
    assert tasks["Reset password?"].item.metadata == {"category": "account"}  # the gold keys are gone
    assert tasks["Refund?"].kind == "review" and tasks["Refund?"].expected_decision == "reject"
    assert tasks["Refund?"].item.status == ItemStatus.DOMAIN_REVIEW
    assert not Item.objects.get(input="Opening hours?").is_gold


def test_an_import_with_a_bad_gold_key_fails_naming_it(api, people, project):
    content = json.dumps(
        {"input": "Refund?", "output": "No.", "external_id": "r-1", "gold": 1, "gold_decision": "maybe"}
    )
    client = api(people["admin"])
    upload = client.post(
        f"/api/projects/{project.pk}/imports/",
        {"file": SimpleUploadedFile("g.jsonl", content.encode())},
        format="multipart",
    )
    import_job_run(job_id=upload.json()["id"])
    job = client.get(f"/api/imports/{upload.json()['id']}/").json()
    assert job["status"] == "failed" and "r-1" in job["message"] and "expected_decision" in job["message"]
    assert not Item.objects.filter(project=project).exists()


def test_gold_settings_are_project_settings(api, people, project):
    url = f"/api/projects/{project.pk}/"
    for change in ({"gold_rate": 1.5}, {"gold_action": "explode"}, {"gold_window": 0}):
        answer = api(people["admin"]).patch(url, change, format="json")
        assert answer.status_code == 400, change
        assert answer.json()["error"]["message"].startswith(next(iter(change)))
    change = {"gold_rate": 0.05, "gold_window": 20, "gold_min_accuracy": 0.8, "gold_action": "extra_review"}
    answer = api(people["admin"]).patch(url, change, format="json")
    assert answer.status_code == 200 and {k: answer.json()[k] for k in change} == change


def test_a_gold_task_is_served_to_a_person_once_and_counts_in_no_audit_figure(api, people, project):
    # given gold always drawn and one gold item, no other work
    gold_project(project, gold_window=100)
    item = gold_item(api, people, project)
    annotate(project, people["annotator"], text=GOLD_ANSWER)
    # then the person gets nothing more: not the gold item again, and the normal queue never serves it
    assert item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE) is None
    # and the audit log has gold actions for it, none of the actions figures count
    actions = set(
        AuditEvent.objects.filter(target_type="item", target_id=str(item.pk)).values_list("action", flat=True)
    )
    assert actions == {"gold.claim", "gold.answer"}


def test_the_per_person_quality_page_shows_gold_accuracy(api, people, project):
    gold_project(project, gold_window=100)
    for _ in range(2):
        gold_item(api, people, project)
    annotate(project, people["annotator"], text=GOLD_ANSWER)
    annotate(project, people["annotator"], text="No idea.")

    rows = api(people["admin"]).get(f"/api/projects/{project.pk}/quality/").json()["people"]

    mine = next(row for row in rows if row["username"] == "annotator")
    assert (mine["gold_accuracy"], mine["gold_tasks"]) == (0.5, 2)
    assert all(row["gold_tasks"] in (None, 0) for row in rows if row["username"] != "annotator")


def test_an_items_timeline_names_gold_work_to_admins_only(api, people, project, client):
    gold_project(project, gold_window=100)
    item = gold_item(api, people, project)
    annotate(project, people["annotator"], text=GOLD_ANSWER)

    def actions(user):
        history = api(user).get(f"/api/items/{item.pk}/history/")
        assert history.status_code == 200
        return [entry["action"] for entry in history.json()]

    assert {"gold.claim", "gold.answer"} <= set(actions(people["admin"]))
    assert not [a for a in actions(people["annotator"]) if a.startswith("gold.")]
    client.force_login(people["annotator"])
    assert "gold." not in client.get(f"/items/{item.pk}/").content.decode()
