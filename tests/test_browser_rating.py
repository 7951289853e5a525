"""Rating in a real headless Chromium: digits score each dimension, the weighted score updates live."""

import pytest
from playwright.sync_api import expect

from review.models import Rating
from review.rating.services import response_create

from .conftest import log_in, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_rater_scores_with_digit_keys_and_sees_the_weighted_score(page, live_asgi, people, project):
    # given a response to score on the default rubric (accuracy .4, politeness .3, usefulness .3)
    response = response_create(
        project=project,
        actor=people["admin"],
        input="Where is my parcel?",
        text="It left our depot this morning; track it on the order page.",
        origin="external",
    )
    log_in(page, live_asgi, "expert")
    page.goto(f"{live_asgi}/projects/{project.pk}/rate/")
    expect(page.locator(".rate-text")).to_contain_text("It left our depot")
    weighted = page.locator("output[name=weighted]")
    # when the rater types 4, 5, 3
    page.keyboard.press("4")
    expect(weighted).to_have_text("≥ 1.60")
    page.keyboard.press("5")
    page.keyboard.press("3")
    # then the weighted score is 0.4×4 + 0.3×5 + 0.3×3
    expect(weighted).to_have_text("4.00")
    shot(page, "rate")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Rating saved.")).to_be_visible()
    rating = Rating.objects.get(response=response, rater=people["expert"])
    assert rating.scores == {"accuracy": 4, "politeness": 5, "usefulness": 3}
    assert rating.weighted_score == pytest.approx(4.0)


def test_a_response_to_a_conversation_is_rated_with_the_conversation_in_view(
    page, live_asgi, people, project
):
    # given a candidate's response to the third turn of a conversation
    response = response_create(
        project=project,
        actor=people["admin"],
        system="You are the help desk of Nordlicht Telecom.",
        messages=[
            {"role": "user", "content": "My router blinks red."},
            {"role": "assistant", "content": "Unplug it for ten seconds, then plug it back in."},
            {"role": "user", "content": "Still red. 现在怎么办？"},
        ],
        text="A technician will check your line today.",
        origin="candidate",
    )
    log_in(page, live_asgi, "expert")
    page.goto(f"{live_asgi}/projects/{project.pk}/rate/")

    # then the rater reads the whole conversation above the response, and scores it with the keys
    chat = page.locator(".rate-chat")
    expect(chat.locator("details.turn[data-turn]")).to_have_count(3)
    expect(chat).to_contain_text("Unplug it for ten seconds")
    expect(chat).to_contain_text("You are the help desk of Nordlicht Telecom.")
    expect(page.locator(".rate-text")).to_contain_text("A technician will check your line today.")
    shot(page, "rate-conversation")
    for key in "453":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Rating saved.")).to_be_visible()
    assert Rating.objects.get(response=response, rater=people["expert"]).weighted_score == pytest.approx(4.0)


def test_agreement_dashboard_draws_its_charts(page, live_asgi, people, project):
    from review.rating.services import rating_submit

    from .factories import MembershipFactory, UserFactory

    # given three raters who scored ten responses, mostly alike
    raters = [people["expert"], people["domain_reviewer"], UserFactory(username="rater3")]
    MembershipFactory(project=project, user=raters[2], role="expert")
    for n in range(10):
        response = response_create(
            project=project,
            actor=people["admin"],
            input=f"Question {n}?",
            text=f"Answer {n}.",
            origin="external",
        )
        for offset, rater in enumerate(raters):
            score = 1 + (n + (offset == 2 and n % 3 == 0)) % 5
            rating_submit(
                response_id=response.pk,
                rater=rater,
                scores={"accuracy": score, "politeness": score, "usefulness": 1 + n % 5},
            )
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/agreement/")
    page.wait_for_function("window.Chart && Object.keys(Chart.instances).length >= 2")
    # and each point sits at its value on the axis that is drawn (the table holds the same figures)
    plotted = page.evaluate("""() => {
        const chart = Object.values(Chart.instances).find((c) => c.canvas.id === "chart-alpha");
        const point = chart.getDatasetMeta(1).data[0];
        return {value: chart.data.datasets[1].data[0], atPixel: chart.scales.y.getValueForPixel(point.y)};
    }""")
    assert plotted["atPixel"] == pytest.approx(plotted["value"], abs=0.01)
    shot(page, "agreement")
