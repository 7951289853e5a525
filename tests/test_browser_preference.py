"""Compare and rank in a real headless Chromium: a rater judges with 1 / 2 / 0, S / C and Enter, ranks with
the candidates' letters (and by dragging), and the leaderboard draws its charts."""

import pytest
from playwright.sync_api import expect

from review.models import Judgement, PairAssignment, RankAssignment, Ranking
from review.preference.judging import judgement_submit
from review.preference.services import pair_register, rank_set_create
from review.rating.services import response_create

from .conftest import log_in, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SYSTEM = "You are the help desk of Nordlicht Telecom."
TURNS = [
    {"role": "user", "content": "My router blinks red."},
    {"role": "assistant", "content": "Unplug it for ten seconds, then plug it back in."},
    {"role": "user", "content": "Still red. 现在怎么办？"},
]
ANSWERS = [
    "A technician will check your line today; you will get a text with the time window.",
    "Try again tomorrow.",
    "Please check that the fibre cable is firmly in the port marked FIBRE, then restart the router "
    "once more.",
]


def answers(project, admin, texts, models=("nordlicht-v2", "nordlicht-v1", "base")):
    return [
        response_create(
            project=project,
            actor=admin,
            system=SYSTEM,
            messages=TURNS,
            text=text,
            origin="candidate",
            model=model,
        )
        for text, model in zip(texts, models, strict=False)
    ]


def test_a_rater_compares_two_answers_with_the_keys(page, live_asgi, people, project):
    # given a pair of answers to the third turn of a conversation
    a, b = answers(project, people["admin"], ANSWERS[:2])
    pair = pair_register(project=project, response_a=a, response_b=b)
    log_in(page, live_asgi, "expert")
    page.goto(f"{live_asgi}/projects/{project.pk}/compare/")
    expect(page.locator(".rate-chat details.turn[data-turn]")).to_have_count(3)
    expect(page.locator(".candidate")).to_have_count(2)
    expect(page.get_by_text("nordlicht-v2")).to_have_count(0)  # blind

    # when the rater presses 2 (B is better) and C (clearly)
    page.keyboard.press("2")
    page.keyboard.press("c")
    expect(page.locator('.candidate[data-side="B"]')).to_have_class("candidate chosen")
    expect(page.locator('input[name="strength"][value="clearly"]')).to_be_checked()
    page.keyboard.press("r")
    page.keyboard.type("More helpful.")
    page.keyboard.press("Escape")
    shot(page, "compare")
    page.keyboard.press("Enter")

    # then the judgement is stored in the pair's order: B as shown is a when the lease swapped them
    expect(page.get_by_text("Judgement saved.")).to_be_visible()
    judgement = Judgement.objects.get(pair=pair)
    shown_second = "a" if judgement.swapped else "b"
    assert (judgement.choice, judgement.strength, judgement.reason) == (
        shown_second,
        "clearly",
        "More helpful.",
    )
    assert not PairAssignment.objects.filter(pair=pair).exists()
    expect(page.get_by_text("Nothing to compare right now.")).to_be_visible()


def test_a_tie_clears_and_locks_the_strength(page, live_asgi, people, project):
    a, b = answers(project, people["admin"], ANSWERS[:2])
    pair = pair_register(project=project, response_a=a, response_b=b)
    log_in(page, live_asgi, "expert")
    page.goto(f"{live_asgi}/projects/{project.pk}/compare/")
    page.keyboard.press("1")
    page.keyboard.press("s")
    page.keyboard.press("0")
    expect(page.locator('input[name="strength"][value="slightly"]')).to_be_disabled()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Judgement saved.")).to_be_visible()
    assert Judgement.objects.get(pair=pair).choice == "tie"


def test_a_rater_ranks_three_candidates_with_their_letters(page, live_asgi, people, project):
    made = answers(project, people["admin"], ANSWERS)
    rank_set = rank_set_create(project=project, responses=made)
    log_in(page, live_asgi, "domain_reviewer")
    page.goto(f"{live_asgi}/projects/{project.pk}/rank/")
    expect(page.locator(".rank-item")).to_have_count(3)
    shown = RankAssignment.objects.get(rank_set=rank_set).shown
    label = {pk: "ABC"[i] for i, pk in enumerate(shown)}
    best, middle, worst = made[2].pk, made[0].pk, made[1].pk

    # when the rater presses the best candidate's letter, then the second best's (the last falls in place)
    page.keyboard.press(label[best])
    page.keyboard.press(label[middle])
    expect(page.locator(".rank-item.placed")).to_have_count(3)
    expect(page.locator(".rank-item").first).to_have_attribute("data-response", str(best))
    shot(page, "rank")
    page.keyboard.press("Enter")

    # then the ranking is stored best first, and each of its pairs judged
    expect(page.get_by_text("Ranking saved.")).to_be_visible()
    assert Ranking.objects.get(rank_set=rank_set).order == [best, middle, worst]
    assert Judgement.objects.filter(ranking__rank_set=rank_set).count() == 3


def test_backspace_takes_back_a_placement_and_arrows_move_a_candidate(page, live_asgi, people, project):
    made = answers(project, people["admin"], ANSWERS)
    rank_set = rank_set_create(project=project, responses=made)
    log_in(page, live_asgi, "expert")
    page.goto(f"{live_asgi}/projects/{project.pk}/rank/")
    expect(page.locator(".rank-item")).to_have_count(3)
    shown = RankAssignment.objects.get(rank_set=rank_set).shown
    page.keyboard.press("C")  # the third shown goes first
    page.keyboard.press("Backspace")
    expect(page.locator(".rank-item.placed")).to_have_count(0)
    expect(page.locator(".rank-item").first).to_have_attribute("data-response", str(shown[2]))
    page.keyboard.press("ArrowDown")  # C is still selected: down one place, which decides the order
    expect(page.locator("input[name=order]")).to_have_value(f"{shown[0]},{shown[2]},{shown[1]}")
    expect(page.locator(".rank-item.placed")).to_have_count(3)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Ranking saved.")).to_be_visible()
    assert Ranking.objects.get().order == [shown[0], shown[2], shown[1]]


def test_a_rater_ranks_by_dragging(page, live_asgi, people, project):
    made = answers(project, people["admin"], ANSWERS)
    rank_set = rank_set_create(project=project, responses=made)
    log_in(page, live_asgi, "expert")
    page.goto(f"{live_asgi}/projects/{project.pk}/rank/")
    expect(page.locator(".rank-item")).to_have_count(3)
    shown = RankAssignment.objects.get(rank_set=rank_set).shown

    page.locator(".rank-item").nth(2).drag_to(
        page.locator(".rank-item").nth(0), target_position={"x": 20, "y": 5}
    )

    expect(page.locator(".rank-item").first).to_have_attribute("data-response", str(shown[2]))
    page.get_by_role("button", name="Submit ranking").click()
    expect(page.get_by_text("Ranking saved.")).to_be_visible()
    assert Ranking.objects.get().order == [shown[2], shown[0], shown[1]]


def test_the_leaderboard_draws_its_charts(page, live_asgi, people, project):
    from tests.factories import MembershipFactory, UserFactory

    judges = [people["expert"], people["domain_reviewer"], UserFactory(username="judge3")]
    MembershipFactory(project=project, user=judges[2], role="expert")
    for n in range(8):
        a, b = [
            response_create(
                project=project,
                actor=people["admin"],
                input=f"Question {n}?",
                text=f"{m} says {n}.",
                origin="candidate",
                model=m,
            )
            for m in ("nordlicht-v2", "nordlicht-v1")
        ]
        c = response_create(
            project=project,
            actor=people["admin"],
            input=f"Question {n}?",
            text=f"base says {n}.",
            origin="draft",
            model="base",
        )
        for x, y, votes in ((a, b, "AAB"), (a, c, "AAA"), (b, c, "ABA")):
            made = pair_register(project=project, response_a=x, response_b=y)
            for judge, vote in zip(judges, votes, strict=True):
                judgement_submit(pair_id=made.pk, rater=judge, choice=vote if n % 4 else "tie")
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/leaderboard/")
    page.wait_for_function("window.Chart && Object.keys(Chart.instances).length >= 2")
    expect(page.locator("table.leaderboard tbody tr").first).to_have_attribute("data-model", "nordlicht-v2")
    expect(page.locator("[data-agreement]")).to_be_visible()
    # the win-rate points sit at their values on the axis drawn
    plotted = page.evaluate("""() => {
        const chart = Object.values(Chart.instances).find((c) => c.canvas.id === "chart-winrate");
        const point = chart.getDatasetMeta(1).data[0];
        return {value: chart.data.datasets[1].data[0], atPixel: chart.scales.y.getValueForPixel(point.y)};
    }""")
    assert plotted["atPixel"] == pytest.approx(plotted["value"], abs=0.01)
    shot(page, "leaderboard")


def test_the_leaderboard_loads_the_form_that_pairs_two_model_versions(page, live_asgi, people, project):
    # The form is the training layer's, fetched by htmx from its URL (review imports no training).
    from tests.test_training_support import small_model_path
    from training.registry import model_version_register

    for name in ("nordlicht-v1", "nordlicht-v2"):
        model_version_register(project=project, actor=None, name=name, base_model=str(small_model_path()))
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/leaderboard/")
    form = page.locator("#versions-compare form")
    expect(form).to_be_visible()
    expect(form.locator("select[name=version_a] option")).to_have_count(2)
    expect(form.locator("select[name=version_a]")).not_to_have_value(
        form.locator("select[name=version_b]").input_value()
    )
    expect(form.get_by_role("button", name="Two model versions on the same prompts")).to_be_visible()
    shot(page, "leaderboard-versions")
