"""Model as a judge: the tiny model scores responses from its next-token probabilities (never parsed
text), its ratings stay apart from people's, it is reported against people as one more rater, and it
may pre-score, sending only the uncertain and the low-scored to people."""

import csv
import io
import math
import time

import pytest
from celery import current_app
from django.db import connection

from annotation.models import AuditEvent
from review.models import Judgement, Rating, Response
from review.preference.services import pair_register
from review.rating.services import (
    JUDGES_PRESCORE,
    rating_claim_next,
    rating_submit,
    response_create,
    rubric_current,
)
from tests.model_servers import Stub, models_route
from tests.test_backend_support import server_fields, tiny_server
from tests.test_drafting_support import tiny_model_path
from training import model_cache
from training.engine import remote
from training.engine.judge import pick_judgement, scale_judgement
from training.judging import prompts
from training.judging.services import JUDGE_RUN, judge_create, judge_run_next
from training.models import JudgePick, JudgeRating, ModelJudge
from training.registry import model_spec, model_version_register

QUESTIONS = [
    "Where is my order?",
    "How do I reset my password?",
    "Can I return a gift?",
    "Why was I charged twice?",
    "Do you ship to Norway?",
    "My parcel arrived damaged.",
]
ANSWERS = [
    "Your parcel arrives tomorrow afternoon.",
    "I have reset your password. Please check your email for the link.",
    "Unfortunately this item is out of stock.",
    "Thank you for your patience while we resolve this issue.",
    "Our store is open from nine in the morning until six in the evening.",
    "I'm sorry to hear that your order arrived damaged.",
]
DIMENSIONS = ("accuracy", "politeness", "usefulness")  # the default rubric's


def tiny_version(project, name="judge-v1", **generation):
    return model_version_register(
        project=project, actor=None, name=name, base_model=str(tiny_model_path()),
        generation={"max_new_tokens": 8, **generation},
    )  # fmt: skip


def responses_make(project, admin, n=6):
    return [
        response_create(
            project=project,
            actor=admin,
            input=QUESTIONS[i % 6],
            text=ANSWERS[(i * 5) % 6] + " " * (i // 6),
            origin="candidate",
            model="tiny",
        )  # fmt: skip
        for i in range(n)
    ]


def judged(judge):
    return {r.response_id: r for r in JudgeRating.objects.filter(judge=judge)}


# --- scoring with the real tiny model -------------------------------------------------------------------


@pytest.mark.django_db
def test_scores_lie_in_the_scale_and_are_deterministic(project, people):
    # given six responses and two judges on the same tiny-model version
    responses = responses_make(project, people["admin"])
    version = tiny_version(project)
    first = judge_create(project=project, actor=people["admin"], model_version_id=version.pk)
    second = judge_create(project=project, actor=people["admin"], model_version_id=version.pk)

    # when both judge every open response
    progress = judge_run_next(judge_id=first.pk)
    judge_run_next(judge_id=second.pk)

    # then every response has scores on the 1-5 scale, the weighted and normalised scores follow from
    # them, and the second judge read exactly the same distribution
    assert progress.judged == len(responses) and progress.failed == 0 and progress.remaining == 0
    a, b = judged(first), judged(second)
    assert set(a) == {r.pk for r in responses}
    for response_id, rating in a.items():
        assert rating.error == ""
        assert set(rating.scores) == set(DIMENSIONS)
        assert all(1.0 <= s <= 5.0 for s in rating.scores.values())
        weighted = 0.4 * rating.scores["accuracy"] + 0.3 * rating.scores["politeness"]
        weighted += 0.3 * rating.scores["usefulness"]
        assert rating.weighted_score == pytest.approx(weighted)
        assert rating.normalised_score == pytest.approx((weighted - 1) / 4)
        details = rating.details["accuracy"]
        assert sum(details["probabilities"].values()) == pytest.approx(1.0)
        assert rating.confidence == pytest.approx(min(rating.details[k]["confidence"] for k in DIMENSIONS))
        assert 0.2 <= rating.confidence <= 1.0  # the largest of five renormalised probabilities
        assert b[response_id].scores == pytest.approx(rating.scores, abs=1e-9)
    # and the scores are not all one value: they come from the model reading each response
    assert len({round(r.weighted_score, 6) for r in a.values()}) > 1


@pytest.mark.django_db
def test_the_score_is_the_expected_value_of_the_next_token_over_the_scale(project, people):
    # given a judged response
    (response,) = responses_make(project, people["admin"], n=1)
    version = tiny_version(project)
    judge = judge_create(project=project, actor=people["admin"], model_version_id=version.pk)
    judge_run_next(judge_id=judge.pk)
    rating = JudgeRating.objects.get(judge=judge)
    # when the same prompt's next-token distribution is read from the model directly
    dimension = next(d for d in response.project.rubrics.get().dimensions.all() if d.key == "accuracy")
    asked = prompts.score_prompt(template=judge.prompt_template, response=response, dimension=dimension)
    with model_cache.lock:
        drafter = model_cache.drafter_for(model_spec(version))
        (log_probs,) = drafter.next_token_log_probs([asked], ["1", "2", "3", "4", "5"])
        rendered = drafter.render(asked)
    # then the stored score is Σ p(k)·k over the renormalised probabilities of "1".."5"
    probs = [math.exp(lp) for lp in log_probs]
    expected = sum(p * k for p, k in zip(probs, range(1, 6), strict=True)) / sum(probs)
    assert rating.scores["accuracy"] == pytest.approx(expected)
    assert rating.details["accuracy"]["confidence"] == pytest.approx(max(probs) / sum(probs))
    # and the prompt holds the template, the conversation, the response and the scale question
    assert judge.prompt_template in rendered and response.text in rendered
    assert "Score for Accuracy (1-5):" in rendered


@pytest.mark.django_db
def test_a_batch_scores_as_one_by_one(project, people):
    # given responses of different lengths, one judge batching them and one judging each alone
    responses_make(project, people["admin"], n=9)
    batched = judge_create(
        project=project, actor=people["admin"], model_version_id=tiny_version(project, batch_size=8).pk
    )
    alone = judge_create(
        project=project, actor=people["admin"], model_version_id=tiny_version(project, "v2", batch_size=1).pk
    )
    # when the first judges all in one chunk and the second one response per task
    judge_run_next(judge_id=batched.pk)
    for _ in range(9):
        judge_run_next(judge_id=alone.pk, limit=1)
    # then both give every response the same scores
    a, b = judged(batched), judged(alone)
    assert set(a) == set(b) and len(a) == 9
    for response_id in a:
        assert a[response_id].scores == pytest.approx(b[response_id].scores, abs=1e-4)


@pytest.mark.django_db
def test_rerunning_skips_what_is_judged(project, people):
    # given five responses and a judge that was stopped after two (a crashed or chunked task)
    responses_make(project, people["admin"], n=5)
    judge = judge_create(project=project, actor=people["admin"], model_version_id=tiny_version(project).pk)
    assert judge_run_next(judge_id=judge.pk, limit=2).remaining == 3
    first_two = {k: v.pk for k, v in judged(judge).items()}
    # when it runs again, twice
    assert judge_run_next(judge_id=judge.pk).judged == 3
    again = judge_run_next(judge_id=judge.pk)
    # then each response is judged once, and the first judgements are the ones kept
    assert again.judged == 0 and again.remaining == 0
    assert JudgeRating.objects.filter(judge=judge).count() == 5
    assert {k: v.pk for k, v in judged(judge).items() if k in first_two} == first_two


@pytest.mark.django_db
def test_closed_responses_are_not_judged(project, people):
    first, second = responses_make(project, people["admin"], n=2)
    Response.objects.filter(pk=second.pk).update(closed_at="2026-01-01T00:00:00Z")
    judge = judge_create(project=project, actor=people["admin"], model_version_id=tiny_version(project).pk)
    judge_run_next(judge_id=judge.pk)
    assert set(judged(judge)) == {first.pk}


@pytest.mark.django_db
def test_a_pick_averages_both_orders(project, people):
    # given a compare pair and a judge that picks in pairs
    a, b = responses_make(project, people["admin"], n=2)
    b.input, b.messages = a.input, a.messages
    b.save()
    pair = pair_register(project=project, response_a=a, response_b=b, source="manual")
    version = tiny_version(project)
    judge = judge_create(
        project=project, actor=people["admin"], model_version_id=version.pk, judge_pairs=True
    )
    # when it judges
    progress = judge_run_next(judge_id=judge.pk)
    # then the pick is the mean of P(first is better) shown first as A and shown second as B
    assert progress.picked == 1
    pick = JudgePick.objects.get(judge=judge, pair=pair)
    in_order = prompts.pick_prompt(template=judge.prompt_template, first=a, second=b)
    swapped = prompts.pick_prompt(template=judge.prompt_template, first=b, second=a)
    with model_cache.lock:
        drafter = model_cache.drafter_for(model_spec(version))
        first, second = drafter.next_token_log_probs([in_order, swapped], ["A", "B"])
    p1 = math.exp(first[0]) / (math.exp(first[0]) + math.exp(first[1]))
    p2 = math.exp(second[1]) / (math.exp(second[0]) + math.exp(second[1]))
    assert pick.p_first == pytest.approx((p1 + p2) / 2)
    assert pick.choice == pick_judgement(first, second).choice
    assert pick.position_bias == pytest.approx((p1 + (1 - p2)) / 2 - 0.5)
    # and a pick is not a human judgement
    assert not Judgement.objects.exists()


def test_the_arithmetic_of_a_judgement():
    # 0.6 on "4", 0.3 on "5", nothing else of the scale: renormalised over the scale
    judgement = scale_judgement([-math.inf, -math.inf, -math.inf, math.log(0.6), math.log(0.3)], 1, 5)
    assert judgement.score == pytest.approx((0.6 * 4 + 0.3 * 5) / 0.9)
    assert judgement.confidence == pytest.approx(2 / 3)
    assert judgement.mass == pytest.approx(0.9)
    assert scale_judgement([-math.inf] * 5, 1, 5).error.startswith("none of the score tokens 1..5")
    # a judge that always prefers the response shown first has no preference between the two
    assert pick_judgement([math.log(0.9), math.log(0.1)], [math.log(0.9), math.log(0.1)]).choice == "tie"
    pick = pick_judgement([math.log(0.8), math.log(0.2)], [math.log(0.4), math.log(0.6)])
    assert pick.p_first == pytest.approx(0.7) and pick.choice == "a"
    assert pick.position_bias == pytest.approx(0.1)


# --- apart from people ----------------------------------------------------------------------------------


def human_figures(api, admin, project, response_ids):
    client = api(admin)
    export = client.get(f"/api/projects/{project.pk}/ratings/export/")
    return {
        "agreement": client.get(f"/api/projects/{project.pk}/agreement/").json(),
        "by_origin": client.get(f"/api/projects/{project.pk}/scores/?by=origin").json(),
        "by_model": client.get(f"/api/projects/{project.pk}/scores/?by=model").json(),
        "export": list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
        if export.streaming
        else export.content,
        "responses": [client.get(f"/api/responses/{pk}/").json()["score"] for pk in response_ids],
    }


@pytest.mark.django_db
def test_the_judges_ratings_never_appear_in_the_human_figures(api, project, people):
    # given responses two people rated
    responses = responses_make(project, people["admin"], n=4)
    for n, response in enumerate(responses):
        for rater in ("expert", "domain_reviewer"):
            score = 1 + (n + len(rater)) % 5
            rating_submit(
                response_id=response.pk, rater=people[rater], scores=dict.fromkeys(DIMENSIONS, score)
            )
    ids = [r.pk for r in responses]
    before = human_figures(api, people["admin"], project, ids)
    # when a judge scores them all
    judge = judge_create(project=project, actor=people["admin"], model_version_id=tiny_version(project).pk)
    assert judge_run_next(judge_id=judge.pk).judged == 4
    # then no human figure changed, and the ratings are still people's alone
    assert human_figures(api, people["admin"], project, ids) == before
    assert Rating.objects.count() == 8
    # and the judge's own ratings are listed apart
    listed = api(people["admin"]).get(f"/api/projects/{project.pk}/judges/{judge.pk}/ratings/").json()
    assert [r["response"] for r in listed["results"]] == ids


def test_the_tasks_are_registered_under_the_names_they_are_sent_by():
    current_app.loader.import_default_modules()
    assert JUDGE_RUN in current_app.tasks
    assert JUDGES_PRESCORE in current_app.tasks
    assert current_app.amqp.router.route({}, JUDGE_RUN)["queue"].name == "gpu"
    assert current_app.amqp.router.route({}, JUDGES_PRESCORE)["queue"].name != "gpu"


# --- the report -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_report_against_a_hand_checked_example(api, project, people):
    # given three responses: people gave (4, 5), (2) and (4), the judge 4, 2 and 5, on every dimension
    responses = responses_make(project, people["admin"], n=3)
    version = tiny_version(project)
    judge = judge_create(project=project, actor=people["admin"], model_version_id=version.pk)
    rubric = rubric_current(project=project)
    human = [[("expert", 4), ("domain_reviewer", 5)], [("expert", 2)], [("expert", 4)]]
    for response, ratings in zip(responses, human, strict=True):
        for rater, score in ratings:
            rating_submit(
                response_id=response.pk, rater=people[rater], scores=dict.fromkeys(DIMENSIONS, score)
            )
    for response, score in zip(responses, (4.0, 2.0, 5.0), strict=True):
        JudgeRating.objects.create(
            judge=judge, response=response, rubric=rubric, scores=dict.fromkeys(DIMENSIONS, score),
            weighted_score=score, normalised_score=(score - 1) / 4, confidence=0.9,
        )  # fmt: skip

    # when an admin asks for the judge's report
    report = api(people["admin"]).get(f"/api/projects/{project.pk}/judges/{judge.pk}/report/").json()

    # then, against the consensus (4.5, 2, 4): by hand,
    judge_scores, consensus = [4.0, 2.0, 5.0], [4.5, 2.0, 4.0]
    values = judge_scores + consensus
    n_values = len(values)
    # Krippendorff's alpha, interval, two "raters" on three units: D_o = (2/N) Σ (a−b)²,
    # D_e = Σ_ij (v_i − v_j)² / (N (N−1))
    observed = 2 / n_values * sum((a - b) ** 2 for a, b in zip(judge_scores, consensus, strict=True))
    expected = sum((x - y) ** 2 for x in values for y in values) / (n_values * (n_values - 1))
    alpha = 1 - observed / expected
    assert alpha == pytest.approx(0.8731, abs=1e-4)
    # Cohen's quadratic kappa on (4, 2, 5) vs the consensus rounded half up (5, 2, 4): 1 − (2/3) / (28/9)
    kappa = 11 / 14
    for row in [*report["dimensions"], report["weighted"]]:
        assert row["n"] == 3 and row["n_human_ratings"] == 4
        assert row["alpha"] == pytest.approx(alpha)
        assert row["kappa"] == pytest.approx(kappa)
        assert row["bias"] == pytest.approx(((4 - 4.5) + (2 - 2) + (5 - 4)) / 3)
        assert row["judge_mean"] == pytest.approx(11 / 3) and row["human_mean"] == pytest.approx(3.5)
    assert [row["key"] for row in report["dimensions"]] == list(DIMENSIONS)
    assert report["judged"] == 3 and report["failed"] == 0 and report["waiting"] == 0


# --- pre-scoring ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_prescoring_closes_exactly_the_confident_high_ones(project, people):
    # given twelve responses, and what the tiny model makes of them (a judge without pre-scoring)
    responses_make(project, people["admin"], n=12)
    version = tiny_version(project)
    scout = judge_create(project=project, actor=people["admin"], model_version_id=version.pk)
    judge_run_next(judge_id=scout.pk)
    seen = sorted(judged(scout).values(), key=lambda r: r.pk)
    confidences = sorted(r.confidence for r in seen)
    scores = sorted(r.normalised_score for r in seen)
    min_confidence, min_score = confidences[len(seen) // 3], scores[len(seen) // 3]
    expected = {
        r.response_id for r in seen if r.confidence >= min_confidence and r.normalised_score >= min_score
    }
    assert 0 < len(expected) < len(seen)  # both outcomes occur
    # when a pre-scoring judge on the same version with those thresholds judges them
    judge = judge_create(
        project=project, actor=people["admin"], model_version_id=version.pk, prescore=True,
        prescore_min_confidence=min_confidence, prescore_min_score=min_score,
    )  # fmt: skip
    progress = judge_run_next(judge_id=judge.pk)
    # then exactly the confident, high-scored ones are closed for human rating
    closed = set(Response.objects.filter(closed_at__isnull=False).values_list("pk", flat=True))
    assert closed == expected and progress.closed == len(expected)
    # and every decision is audited, with its reason
    events = AuditEvent.objects.filter(action__startswith="response.prescore_")
    assert {int(e.target_id) for e in events if e.action == "response.prescore_closed"} == expected
    kept = {int(e.target_id): e.data["reason"] for e in events if e.action == "response.prescore_kept"}
    assert set(kept) == {r.response_id for r in seen} - expected
    for response_id, reason in kept.items():
        rating = judged(judge)[response_id]
        assert reason == ("uncertain" if rating.confidence < min_confidence else "low_score")
    # and people are sent only the others
    offered = set()
    while (response := rating_claim_next(project=project, user=people["expert"])) is not None:
        offered.add(response.pk)
        rating_submit(response_id=response.pk, rater=people["expert"], scores=dict.fromkeys(DIMENSIONS, 3))
    assert offered == set(kept)


@pytest.mark.django_db
def test_prescoring_leaves_a_response_people_started(project, people):
    # given a response an expert has rated, and a judge that would close anything
    (response,) = responses_make(project, people["admin"], n=1)
    rating_submit(response_id=response.pk, rater=people["expert"], scores=dict.fromkeys(DIMENSIONS, 4))
    judge = judge_create(
        project=project, actor=people["admin"], model_version_id=tiny_version(project).pk, prescore=True,
        prescore_min_confidence=0.0, prescore_min_score=0.0,
    )  # fmt: skip
    judge_run_next(judge_id=judge.pk)
    response.refresh_from_db()
    assert response.closed_at is None
    event = AuditEvent.objects.get(action="response.prescore_kept")
    assert event.data["reason"] == "people_started"


@pytest.mark.django_db
def test_prescoring_is_off_by_default_and_one_judge_per_project_may_do_it(api, project, people):
    version = tiny_version(project)
    client = api(people["admin"])
    url = f"/api/projects/{project.pk}/judges/"
    first = client.post(url, {"model_version": version.pk}, format="json")
    assert first.status_code == 201 and first.json()["prescore"] is False
    assert client.post(url, {"model_version": version.pk, "prescore": True}, format="json").status_code == 201
    second = client.post(url, {"model_version": version.pk, "prescore": True}, format="json")
    assert second.status_code == 409 and second.json()["error"]["code"] == "prescore_taken"


# --- API, page and permissions --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"model_version": 999999}, "model_version"),
        ({"model_version": "VERSION", "prescore_min_confidence": 1.5}, "prescore_min_confidence"),
        ({"model_version": "VERSION", "prompt_template": "  "}, "prompt_template"),
        ({"model_version": "VERSION", "prescore": "yes"}, "prescore"),
        ({"model_version": "VERSION", "colour": 1}, "colour"),
    ],
)
def test_bad_judge_settings_are_400_naming_the_field(api, project, people, body, field):
    version = tiny_version(project)
    body = {k: (version.pk if v == "VERSION" else v) for k, v in body.items()}
    answer = api(people["admin"]).post(f"/api/projects/{project.pk}/judges/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(field)
    assert not ModelJudge.objects.exists()


@pytest.mark.django_db
def test_only_project_admins_configure_run_and_see_judges(api, project, people):
    version = tiny_version(project)
    judge = judge_create(project=project, actor=people["admin"], model_version_id=version.pk)
    base = f"/api/projects/{project.pk}/judges/"
    calls = [
        ("get", base, None),
        ("post", base, {"model_version": version.pk}),
        ("get", f"{base}{judge.pk}/", None),
        ("patch", f"{base}{judge.pk}/", {"enabled": False}),
        ("post", f"{base}{judge.pk}/run/", None),
        ("get", f"{base}{judge.pk}/ratings/", None),
        ("get", f"{base}{judge.pk}/report/", None),
    ]
    for who, status in (("expert", 403), ("domain_reviewer", 403), ("annotator", 403), ("outsider", 404)):
        for method, url, body in calls:
            assert getattr(api(people[who]), method)(url, body, format="json").status_code == status, (
                who,
                url,
            )
    assert api(None).get(base).status_code == 401
    # the admin may do each (the run last: it disables nothing)
    client = api(people["admin"])
    assert client.get(f"{base}{judge.pk}/report/").status_code == 200
    run = client.post(f"{base}{judge.pk}/run/")
    assert run.status_code == 202 and run.json()["pending"] == {"responses": 0, "pairs": 0}
    assert AuditEvent.objects.filter(action="judge.run").count() == 1
    patched = client.patch(f"{base}{judge.pk}/", {"enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    disabled = client.post(f"{base}{judge.pk}/run/")
    assert disabled.status_code == 409 and disabled.json()["error"]["code"] == "judge_disabled"


@pytest.mark.django_db
def test_the_page_is_for_admins(client, project, people):
    version = tiny_version(project)
    judge_create(project=project, actor=people["admin"], model_version_id=version.pk)
    url = f"/projects/{project.pk}/judge/"
    for who, status in (("admin", 200), ("expert", 403), ("annotator", 403), ("outsider", 404)):
        client.force_login(people[who])
        assert client.get(url).status_code == status, who
    client.force_login(people["admin"])
    page = client.get(url).content.decode()
    assert "judge-v1" in page and "Weighted score" in page


# --- an OpenAI-compatible server -----------------------------------------------------------------------


def top_logprobs_route(top: dict[str, float]):
    """A one-token chat answer whose first token lists `top` ({token: probability})."""

    def route(body):
        listed = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top.items()]
        content = [{"token": next(iter(top)), "logprob": listed[0]["logprob"], "top_logprobs": listed}]
        choice = {"index": 0, "message": {"role": "assistant", "content": next(iter(top))},
                  "logprobs": {"content": content}, "finish_reason": "length"}  # fmt: skip
        return 200, {}, {"object": "chat.completion", "choices": [choice]}

    return route


def stub_version(project, stub, **options):
    return model_version_register(
        project=project, actor=None, name="served", backend="openai", server_url=stub.url, server_model="m",
        server_options=options,
    )  # fmt: skip


@pytest.mark.django_db
def test_a_served_judge_reads_the_score_tokens_among_the_top_logprobs(project, people):
    # given a server whose first token is " 4" (0.5), "4" (0.1), "5" (0.3) or a word (0.1)
    top = {" 4": 0.5, "4": 0.1, "5": 0.3, "Sure": 0.1}
    routes = {
        ("GET", "/v1/models"): models_route("m"),
        ("POST", "/v1/chat/completions"): top_logprobs_route(top),
    }
    with Stub(routes) as stub:
        judge = judge_create(
            project=project, actor=people["admin"], model_version_id=stub_version(project, stub).pk
        )
        responses_make(project, people["admin"], n=2)
        # when the judge runs
        progress = judge_run_next(judge_id=judge.pk)
        asked = [body for _m, path, body, _h in stub.requests if path == "/v1/chat/completions"][-1]
    # then it asked for one token with the top 20 logprobs, and "4" counts both spellings
    assert asked["max_tokens"] == 1 and asked["logprobs"] is True and asked["top_logprobs"] == 20
    assert progress.judged == 2
    rating = next(iter(judged(judge).values()))
    assert rating.scores["accuracy"] == pytest.approx((0.6 * 4 + 0.3 * 5) / 0.9)
    assert rating.confidence == pytest.approx(0.6 / 0.9)


@pytest.mark.django_db
def test_a_judgement_without_any_score_token_fails_with_the_reason_stored(project, people):
    routes = {
        ("GET", "/v1/models"): models_route("m"),
        ("POST", "/v1/chat/completions"): top_logprobs_route({"Sure": 0.7, "Well": 0.2}),
    }
    with Stub(routes) as stub:
        judge = judge_create(
            project=project, actor=people["admin"], model_version_id=stub_version(project, stub).pk,
            prescore=True,
        )  # fmt: skip
        (response,) = responses_make(project, people["admin"], n=1)
        progress = judge_run_next(judge_id=judge.pk)
    assert progress.failed == 1 and progress.remaining == 0 and progress.closed == 0
    rating = JudgeRating.objects.get(judge=judge, response=response)
    assert rating.scores == {} and rating.weighted_score is None
    assert "accuracy: none of the score tokens 1..5 has any probability" in rating.error
    assert JudgeRating.objects.count() == 1  # kept, and not asked again
    assert judge_run_next(judge_id=judge.pk).failed == 0
    # and pre-scoring sends it to people, saying why
    response.refresh_from_db()
    assert response.closed_at is None
    assert AuditEvent.objects.get(action="response.prescore_kept").data["reason"] == "no_judgement"


@pytest.mark.django_db
def test_a_server_that_is_down_stores_nothing_and_says_when_to_come_back(project, people):
    state = {"up": True}

    def chat(body):
        if state["up"]:
            return top_logprobs_route({"3": 1.0})(body)
        return 503, {"Retry-After": "7"}, {"error": {"message": "overloaded"}}

    routes = {("GET", "/v1/models"): models_route("m"), ("POST", "/v1/chat/completions"): chat}
    try:
        with Stub(routes) as stub:
            judge = judge_create(
                project=project, actor=people["admin"],
                model_version_id=stub_version(project, stub, max_retries=0).pk,
            )  # fmt: skip
            responses_make(project, people["admin"], n=2)
            state["up"] = False
            progress = judge_run_next(judge_id=judge.pk)
    finally:
        remote.BREAKER.reset()
    assert progress.retry_after == 7 and progress.judged == 0 and progress.remaining == 2
    assert not JudgeRating.objects.exists()


@pytest.mark.django_db
def test_a_judge_on_llama_cpps_server(project, people):
    """llama.cpp's server returns top_logprobs ({text: logprob}, so tokens that decode alike are one
    entry); on the random tiny model the digits are never among its 20 most likely first tokens, so
    its judgements fail, with the reason stored, and what it lists agrees with the local model."""
    server = tiny_server()
    version = model_version_register(project=project, actor=None, name="served", **server_fields(server))
    judge = judge_create(project=project, actor=people["admin"], model_version_id=version.pk)
    (response,) = responses_make(project, people["admin"], n=1)
    # when it judges through the server
    judge_run_next(judge_id=judge.pk)
    # then the judgement is stored: scores on the scale, or the reason there are none
    rating = JudgeRating.objects.get(judge=judge, response=response)
    if rating.error:
        assert "none of the score tokens 1..5 has any probability" in rating.error
    else:
        assert all(1 <= s <= 5 for s in rating.scores.values())
    # and the server's top tokens carry the probabilities the local model gives them
    dimension = project.rubrics.get().dimensions.get(key="accuracy")
    asked = prompts.score_prompt(template=judge.prompt_template, response=response, dimension=dimension)
    top = remote.RemoteClient(model_spec(version).server).next_token_top_logprobs(asked)
    assert len(top) >= 5
    with model_cache.lock:
        drafter = model_cache.drafter_for(model_spec(tiny_version(project, "local")))
        # a token only one vocabulary entry spells (llama.cpp lists tokens by their text, and shows
        # the pieces of a character as "")
        listed = sorted(top, key=lambda t: -t["logprob"])
        token = next(
            t
            for t in listed
            if t["token"].strip() and len(drafter.label_token_ids([t["token"].strip()])[0]) == 1
        )
        (local,) = drafter.next_token_log_probs([asked], [token["token"].strip()])
    assert local[0] == pytest.approx(token["logprob"], abs=0.02)


# --- with a real worker: pre-scoring when a response is added -------------------------------------------


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_prescoring_judge_scores_responses_as_they_are_added(api, project, people):
    # given a pre-scoring judge that closes nothing it is unsure of (confidence 1 is never reached)
    version = model_version_register(
        project=project, actor=None, name="judge-v1", base_model=str(tiny_model_path())
    )
    judge = judge_create(
        project=project, actor=people["admin"], model_version_id=version.pk, prescore=True,
        prescore_min_confidence=1.0,
    )  # fmt: skip
    # when an admin adds a response by API
    body = {"input": QUESTIONS[0], "text": ANSWERS[0], "origin": "candidate"}
    created = api(people["admin"]).post(f"/api/projects/{project.pk}/responses/", body, format="json")
    assert created.status_code == 201
    # then the worker judges it without anyone pressing a button, and sends it to people
    deadline = time.monotonic() + 120
    while not JudgeRating.objects.filter(judge=judge).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    rating = JudgeRating.objects.get(judge=judge)
    assert rating.response_id == created.json()["id"] and rating.error == ""
    deadline = time.monotonic() + 30
    while (
        not AuditEvent.objects.filter(action="response.prescore_kept").exists()
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert AuditEvent.objects.get(action="response.prescore_kept").data["reason"] == "uncertain"
    assert Response.objects.get(pk=rating.response_id).closed_at is None
    connection.close()
