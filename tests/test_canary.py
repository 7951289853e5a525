"""Canary rollout: a sticky share of callers asks the candidate, reviewed answers of both arms decide,
a worse candidate is rolled back and a not-worse one promoted; admins only; bad input names the field."""

import pytest
from django.core.cache import cache
from django.test import override_settings

from annotation.models import AuditEvent, Stage
from annotation.workflow.transitions import DraftCandidate, item_claim_next, item_submit
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.test_drafting_support import tiny_model_path, version_deploy
from tests.test_metrics import grew, scrape, value
from training import canary, trigger
from training.handover import ask_answer_log
from training.models import Canary, CanaryState, ModelVersion, ModelVersionStatus
from training.registry import model_version_deploy, model_version_register

REWRITE = "Orders ship from our warehouse in Leipzig and arrive within five working days."


@pytest.fixture(autouse=True)
def fresh_cache():
    """Calibration fits are cached per version id, and ids repeat between tests that flush the database."""
    cache.clear()
    yield
    cache.clear()


def settings_set(project, **fields):
    for name, new in fields.items():
        setattr(project, name, new)
    project.save(update_fields=list(fields))


def two_versions(project):
    """v1 deployed (the baseline) and v2 registered (the candidate), both the tiny default."""
    v1 = model_version_register(project=project, actor=None, name="v1")
    model_version_deploy(version_id=v1.pk, actor=None)
    v2 = model_version_register(project=project, actor=None, name="v2")
    return ModelVersion.objects.get(pk=v1.pk), v2


def answers_judged(project, people, version, verdicts, *, tag):
    """Sampled answers of the version (one per verdict), approved by people (one review tier) with the
    model's answer unchanged (True: acceptable) or rewritten (False)."""
    settings_set(project, review_tiers=1)
    for i, _ok in enumerate(verdicts):
        ask_answer_log(
            project=project, actor=people["annotator"], question=f"{tag} question {i}?", version=version,
            candidates=[DraftCandidate(f"{tag} answer {i}: the parcel leaves the depot today.", 0.9)],
            metadata={}, review_rate=1.0, latency_ms=10.0 * (i + 1),
        )  # fmt: skip
    verdict = {f"{tag} question {i}?": ok for i, ok in enumerate(verdicts)}
    for _ in verdicts:
        item = item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE)
        text = item.drafts.first().text if verdict[item.input] else REWRITE
        item_submit(item_id=item.pk, user=people["annotator"], text=text, version=item.version)


def start(client, version, **options):
    return client.post(f"/api/model-versions/{version.pk}/promote/", {"canary": options}, format="json")


# --- pure parts -----------------------------------------------------------------------------------------


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Stat Med 17:873, method 10: 56/70 − 48/80 → 0.0524 to 0.3339; 9/10 − 3/10 →
    # 0.1705 to 0.8090
    d, low, high = canary.difference_interval(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (low, high) == (pytest.approx(0.0524, abs=5e-5), pytest.approx(0.3339, abs=5e-5))
    assert canary.difference_interval(9, 10, 3, 10)[1:] == (
        pytest.approx(0.1705, abs=5e-5),
        pytest.approx(0.8090, abs=5e-5),
    )
    assert canary.difference_interval(3, 10, 0, 0) is None


def test_callers_split_by_the_share_and_each_sees_one_arm():
    buckets = [canary.caller_bucket(canary_id=7, user_id=u) for u in range(4000)]
    share = sum(b < 0.1 for b in buckets) / len(buckets)
    assert 0.085 < share < 0.115
    assert buckets == [canary.caller_bucket(canary_id=7, user_id=u) for u in range(4000)]  # sticky
    other = [canary.caller_bucket(canary_id=8, user_id=u) < 0.1 for u in range(4000)]
    assert other != [b < 0.1 for b in buckets]  # the next canary draws its callers afresh


def test_the_canary_arm_is_sampled_at_least_at_half_and_the_baseline_to_match():
    assert canary.review_rate(rate=0.05, arm="canary", share=0.1) == 0.5
    assert canary.review_rate(rate=0.8, arm="canary", share=0.1) == 0.8
    assert canary.review_rate(rate=0.0, arm="baseline", share=0.1) == pytest.approx(0.5 / 9)
    assert canary.review_rate(rate=0.05, arm=None, share=0.0) == 0.05


# --- routing --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ask_routes_the_share_of_callers_to_the_candidate_stickily(project, people):
    v1, v2 = two_versions(project)
    running = canary.canary_start(
        project=project, version_id=v2.pk, actor=people["admin"], share=0.25, min_outcomes=5
    )
    callers = [UserFactory() for _ in range(200)]
    routed = {u.pk: canary.ask_route(project=project, actor=u, deployed=v1) for u in callers}
    on_canary = [u for u, (version, arm, _s) in routed.items() if arm == "canary"]
    assert all(version == v2 for version, arm, _s in routed.values() if arm == "canary")
    assert all(version == v1 for version, arm, _s in routed.values() if arm == "baseline")
    assert 0.15 < len(on_canary) / len(callers) < 0.35
    again = {u.pk: canary.ask_route(project=project, actor=u, deployed=v1)[1] for u in callers}
    assert again == {pk: arm for pk, (_v, arm, _s) in routed.items()}
    # once the canary ends, everyone asks the deployed version again
    canary.canary_end(project=project, actor=people["admin"], decision="rollback")
    assert {canary.ask_route(project=project, actor=u, deployed=v1)[:2] for u in callers} == {(v1, None)}
    assert running.baseline_id == v1.pk


# --- the decision ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(HANDOVER_CANARY_MARGIN=0.3)
def test_a_not_worse_canary_is_promoted_and_audited(project, people):
    v1, v2 = two_versions(project)
    running = canary.canary_start(
        project=project, version_id=v2.pk, actor=people["admin"], share=0.1, min_outcomes=10
    )
    answers_judged(project, people, v2, [True] * 9, tag="canary")
    answers_judged(project, people, v1, [True] * 9 + [False], tag="baseline")
    assert canary.canary_decide(canary_id=running.pk) == CanaryState.RUNNING  # 9 of 10 outcomes

    answers_judged(project, people, v2, [True], tag="late")
    assert trigger.canaries_decide() == {running.pk: CanaryState.PROMOTED}

    running.refresh_from_db()
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v2.status, v1.status) == (ModelVersionStatus.DEPLOYED, ModelVersionStatus.RETIRED)
    arms = running.result["arms"]
    assert (arms["canary"]["outcomes"], arms["canary"]["acceptable"]) == (10, 10)
    assert (arms["baseline"]["outcomes"], arms["baseline"]["acceptable"]) == (10, 9)
    assert running.result["difference"]["low"] > -0.3 and running.decided_at is not None
    assert arms["canary"]["latency_ms_p50"] == 40.0 and arms["canary"]["latency_ms_p95"] == 90.0
    event = AuditEvent.objects.get(action="canary.promote")
    assert (event.from_state, event.to_state, event.actor_id) == ("running", "promoted", None)
    assert AuditEvent.objects.filter(action="model_version.deploy", to_state="deployed").count() == 2


@pytest.mark.django_db
def test_a_clearly_worse_canary_is_rolled_back_and_the_baseline_stays(project, people):
    v1, v2 = two_versions(project)
    running = canary.canary_start(
        project=project, version_id=v2.pk, actor=people["admin"], share=0.1, min_outcomes=8
    )
    answers_judged(project, people, v2, [False] * 7 + [True], tag="canary")
    answers_judged(project, people, v1, [True] * 8, tag="baseline")

    assert canary.canary_decide(canary_id=running.pk) == CanaryState.ROLLED_BACK
    running.refresh_from_db()
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (ModelVersionStatus.DEPLOYED, ModelVersionStatus.CANDIDATE)
    assert running.result["difference"]["high"] < 0 and "clearly worse" in running.result["reason"]
    assert AuditEvent.objects.filter(action="canary.roll_back", to_state="rolled_back").count() == 1
    assert canary.canary_decide(canary_id=running.pk) == CanaryState.ROLLED_BACK  # idempotent


@pytest.mark.django_db
def test_outcomes_before_the_canary_started_do_not_count(project, people):
    v1, v2 = two_versions(project)
    answers_judged(project, people, v1, [False] * 5, tag="before")  # the baseline's history
    running = canary.canary_start(
        project=project, version_id=v2.pk, actor=people["admin"], share=0.1, min_outcomes=3
    )
    answers_judged(project, people, v1, [True, True], tag="during")
    report = canary.canary_report(running)
    assert (report["arms"]["baseline"]["outcomes"], report["arms"]["baseline"]["answers"]) == (2, 2)
    assert report["verdict"] is None and "0 of 3" in report["reason"]


@pytest.mark.django_db
def test_deploying_another_version_meanwhile_cancels_the_canary(project, people):
    v1, v2 = two_versions(project)
    v3 = model_version_register(project=project, actor=None, name="v3")
    running = canary.canary_start(
        project=project, version_id=v2.pk, actor=people["admin"], share=0.5, min_outcomes=3
    )
    model_version_deploy(version_id=v3.pk, actor=people["admin"])
    v3.refresh_from_db()
    assert canary.ask_route(project=project, actor=people["annotator"], deployed=v3)[:2] == (v3, None)
    assert canary.canary_decide(canary_id=running.pk) == CanaryState.CANCELLED
    assert AuditEvent.objects.filter(action="canary.cancel").exists()


# --- the API: by hand, permissions, bad input -------------------------------------------------------------


@pytest.mark.django_db
def test_admin_starts_sees_and_promotes_by_hand(project, people, api):
    v1, v2 = two_versions(project)
    client = api(people["admin"])
    response = start(client, v2, share=0.2, min_outcomes=50)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["state"], body["share"], body["min_outcomes"]) == ("running", 0.2, 50)
    assert set(body["arms"]) == {"baseline", "canary"} and body["arms"]["canary"]["model_version"] == v2.pk
    assert AuditEvent.objects.filter(action="canary.start", actor=people["admin"]).count() == 1
    v2.refresh_from_db()
    assert v2.status == ModelVersionStatus.CANDIDATE  # nothing deployed yet

    shown = client.get(f"/api/projects/{project.pk}/canary/").json()
    assert shown["canary"]["id"] == body["id"] and shown["history"][0]["state"] == "running"
    gauge = scrape(api(people["staff"]))
    labels = {"project": str(project.pk), "candidate": str(v2.pk), "baseline": str(v1.pk)}
    assert value(gauge, "handover_canary_share", **labels) == 0.2
    ended = client.post(f"/api/projects/{project.pk}/canary/promote/")
    assert ended.status_code == 200 and ended.json()["state"] == "promoted"
    v2.refresh_from_db()
    assert v2.status == ModelVersionStatus.DEPLOYED
    assert client.post(f"/api/projects/{project.pk}/canary/rollback/").status_code == 409  # none runs


@pytest.mark.django_db
def test_the_models_page_shows_the_arms_and_starts_a_canary(project, people, client):
    v1, v2 = two_versions(project)
    client.force_login(people["admin"])
    response = client.post(
        f"/projects/{project.pk}/models/{v2.pk}/canary/", {"share": "0.3", "min_outcomes": "20"}
    )
    assert response.status_code == 302
    running = Canary.objects.get(state="running")
    assert (running.candidate_id, running.baseline_id, running.share) == (v2.pk, v1.pk, 0.3)
    page = client.get(f"/projects/{project.pk}/models/").content.decode()
    assert 'id="canary"' in page and "arm-canary" in page and "arm-baseline" in page
    client.post(f"/projects/{project.pk}/models/canary/rollback/")
    running.refresh_from_db()
    assert running.state == CanaryState.ROLLED_BACK


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("staff", 200), ("annotator", 403), ("expert", 403), ("outsider", 404), (None, 401)],
)
def test_only_admins_see_start_and_end_canaries(project, people, api, who, status):
    _v1, v2 = two_versions(project)
    client = api(people[who] if who else None)
    assert client.get(f"/api/projects/{project.pk}/canary/").status_code == status
    started = start(client, v2, share=0.1, min_outcomes=5).status_code
    assert started == (201 if status == 200 else status)
    ended = client.post(f"/api/projects/{project.pk}/canary/rollback/").status_code
    assert ended == status
    if status == 200:
        assert not Canary.objects.filter(state="running").exists()  # started, then rolled back


@pytest.mark.django_db
def test_members_who_are_not_admins_cannot_start_or_end_one_on_the_page(project, people, client):
    _v1, v2 = two_versions(project)
    canary.canary_start(project=project, version_id=v2.pk, actor=people["admin"], share=0.1, min_outcomes=5)
    client.force_login(people["expert"])
    assert client.post(f"/projects/{project.pk}/models/{v2.pk}/canary/", {"share": "0.3"}).status_code == 403
    assert client.post(f"/projects/{project.pk}/models/canary/promote/").status_code == 403
    assert 'id="canary"' not in client.get(f"/projects/{project.pk}/models/").content.decode()
    assert Canary.objects.get().state == CanaryState.RUNNING


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"share": 0, "min_outcomes": 5}, "share"),
        ({"share": 1, "min_outcomes": 5}, "share"),
        ({"share": 1.5, "min_outcomes": 5}, "share"),
        ({"share": "lots", "min_outcomes": 5}, "share"),
        ({"min_outcomes": 5}, "share"),
        ({"share": 0.1, "min_outcomes": 0}, "min_outcomes"),
        ({"share": 0.1, "min_outcomes": "many"}, "min_outcomes"),
    ],
)
def test_bad_canary_options_are_400_naming_the_field(project, people, api, options, field):
    _v1, v2 = two_versions(project)
    response = start(api(people["admin"]), v2, **options)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"] and field in response.json()["error"]["message"]
    assert not Canary.objects.exists()


@pytest.mark.django_db
def test_a_version_of_another_project_or_a_second_canary_is_400(project, people, api):
    _v1, v2 = two_versions(project)
    other = ProjectFactory()
    MembershipFactory(project=other, user=people["admin"], role="admin")
    foreign = model_version_register(project=other, actor=None, name="elsewhere")
    client = api(people["admin"])
    response = client.post(
        f"/api/projects/{project.pk}/canary/", {"version": foreign.pk, "share": 0.1}, format="json"
    )
    assert response.status_code == 400 and "version" in response.json()["error"]["details"]

    assert start(client, v2, share=0.1, min_outcomes=5).status_code == 201
    v3 = model_version_register(project=project, actor=None, name="v3")
    second = start(client, v3, share=0.1, min_outcomes=5)
    assert second.status_code == 400 and "canary" in second.json()["error"]["details"]
    assert second.json()["error"]["code"] == "canary_running"
    assert Canary.objects.filter(state="running").count() == 1
    assert start(client, v2, share="x").status_code == 400  # checked before the running one


@pytest.mark.django_db
def test_without_a_deployed_baseline_a_canary_is_refused(project, people, api):
    v2 = model_version_register(project=project, actor=None, name="v2")
    response = start(api(people["admin"]), v2, share=0.1, min_outcomes=5)
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_baseline"


# --- with a real worker and the tiny model: asks answered by the worker, the beat task run by it --------


def callers_in_arms(project, running):
    """A member in the canary's arm and one in the baseline's (the split is a hash, so look for them)."""
    found = {}
    while len(found) < 2:
        user = UserFactory()
        MembershipFactory(project=project, user=user, role="annotator")
        arm = "canary" if canary.caller_bucket(canary_id=running, user_id=user.pk) < 0.5 else "baseline"
        found.setdefault(arm, user)
    return found


def traffic_judged(project, people, api, *, n_canary, n_baseline, canary_ok):
    """A canary of v2 at share 0.5; its caller asks n_canary questions and the baseline's n_baseline,
    through the real worker; people approve every (sampled) answer, the canary's unchanged or not."""
    settings_set(project, confidence_threshold=0.0, answered_review_rate=1.0, review_tiers=1)
    v1 = version_deploy(project, name="v1")
    v2 = model_version_register(
        project=project, actor=None, name="v2", base_model=str(tiny_model_path()),
        generation={"max_new_tokens": 6},
    )  # fmt: skip
    started = start(api(people["admin"]), v2, share=0.5, min_outcomes=n_canary)
    assert started.status_code == 201, started.json()
    callers = callers_in_arms(project, started.json()["id"])
    for arm, n in (("canary", n_canary), ("baseline", n_baseline)):
        client = api(callers[arm])
        for i in range(n):
            body = client.post(
                f"/api/projects/{project.pk}/ask/", {"question": f"{arm} question {i}?"}, format="json"
            ).json()
            assert (body["arm"], body["source"]) == (arm, "model"), body
            assert body["model_version"] == (v2.pk if arm == "canary" else v1.pk)
    for _ in range(n_canary + n_baseline):
        item = item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE)
        logged = item.ask_answers.get()
        keep = canary_ok or logged.model_version_id == v1.pk
        text = logged.answer if keep else REWRITE
        item_submit(item_id=item.pk, user=people["annotator"], text=text, version=item.version)
    return started.json()["id"], v1, v2


def decide_in_the_worker(canary_id):
    from config.celery import app

    states = app.send_task("training.trigger.canaries_decide").get(timeout=60)
    return states[str(canary_id)]


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@override_settings(HANDOVER_ASK_TIMEOUT=120, HANDOVER_ASK_RATE="10000/min")
def test_with_a_worker_a_worse_canary_is_rolled_back(project, people, api):
    before = scrape(api(people["staff"]))
    canary_id, v1, v2 = traffic_judged(project, people, api, n_canary=4, n_baseline=4, canary_ok=False)
    after = scrape(api(people["staff"]))
    for arm in ("canary", "baseline"):  # /metrics counts each arm's answers apart
        assert (
            grew(before, after, "handover_ask_total", project=str(project.pk), outcome="answered", arm=arm)
            == 4
        )

    assert decide_in_the_worker(canary_id) == CanaryState.ROLLED_BACK
    shown = api(people["admin"]).get(f"/api/projects/{project.pk}/canary/").json()["canary"]
    arms = shown["arms"]
    assert shown["state"] == "rolled_back"
    assert (arms["canary"]["acceptable"], arms["baseline"]["acceptable"]) == (0, 4)
    assert arms["canary"]["answers"] == 4 and arms["canary"]["latency_ms_p95"] > 0
    assert ModelVersion.objects.get(status=ModelVersionStatus.DEPLOYED) == v1
    assert AuditEvent.objects.filter(action="canary.roll_back", actor=None).count() == 1


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@override_settings(HANDOVER_ASK_TIMEOUT=120, HANDOVER_ASK_RATE="10000/min")
def test_with_a_worker_a_not_worse_canary_is_promoted(project, people, api):
    # at the default margin 0.05, 75 acceptable canary answers put the interval's lower end at −0.049
    canary_id, v1, v2 = traffic_judged(project, people, api, n_canary=75, n_baseline=3, canary_ok=True)

    assert decide_in_the_worker(canary_id) == CanaryState.PROMOTED
    assert ModelVersion.objects.get(status=ModelVersionStatus.DEPLOYED) == v2
    ended = Canary.objects.get(pk=canary_id)
    assert ended.result["difference"]["low"] > -0.05 and ended.result["by"] == "system"
    assert AuditEvent.objects.filter(action="canary.promote", actor=None).count() == 1
