"""The preference pages without a browser: compare and rank (htmx, blind, escaped), the leaderboard with
agreement and exports, the buttons that make pairs, and who may open each."""

import io
import json

import pytest
from django.test import Client

from review.models import Judgement, Pair, Ranking
from review.preference.judging import judgement_submit
from tests.test_preference_support import pair, rank_set

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["compare/", "rank/", "leaderboard/"])
@pytest.mark.parametrize("who, status", [("annotator", 403), ("outsider", 404)])
def test_outsiders_and_annotators_cannot_open_the_pages(people, project, path, who, status):
    assert client_for(people[who]).get(f"/projects/{project.pk}/{path}").status_code == status


def test_the_compare_page_is_blind_and_escapes_the_texts(people, project):
    pair(
        project,
        people["admin"],
        models=("secret-v1", "secret-v2"),
        texts=("<script>alert(1)</script>", "Plain."),
    )
    html = client_for(people["expert"]).get(f"/projects/{project.pk}/compare/").content.decode()
    assert "secret-v1" not in html and "secret-v2" not in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'name="choice" value="A"' in html and 'name="choice" value="tie"' in html
    assert "compare.js" in html


def test_submitting_by_htmx_saves_the_judgement_and_shows_the_next_pair(people, project):
    first = pair(project, people["admin"], texts=("One a.", "One b."), question="First?")
    pair(project, people["admin"], texts=("Two a.", "Two b."), question="Second?")
    client = client_for(people["expert"])
    client.get(f"/projects/{project.pk}/compare/")

    answer = client.post(
        f"/projects/{project.pk}/compare/{first.pk}/",
        {"choice": "B", "strength": "slightly", "reason": "shorter"},
        HTTP_HX_REQUEST="true",
    )

    html = answer.content.decode()
    assert "Judgement saved." in html and "Second?" in html
    judgement = Judgement.objects.get(pair=first)
    assert (judgement.strength, judgement.reason) == ("slightly", "shorter")


def test_a_bad_judgement_shows_the_error_and_keeps_what_was_chosen(people, project):
    made = pair(project, people["admin"])
    client = client_for(people["expert"])
    client.get(f"/projects/{project.pk}/compare/")
    answer = client.post(
        f"/projects/{project.pk}/compare/{made.pk}/",
        {"choice": "tie", "strength": "clearly"},
        HTTP_HX_REQUEST="true",
    )
    html = answer.content.decode()
    assert "a tie has no strength" in html
    assert 'value="tie" checked' in html
    assert not Judgement.objects.exists()


def test_the_rank_page_lists_the_candidates_in_the_leases_order_and_takes_an_order(people, project):
    from review.models import RankAssignment

    made = rank_set(project, people["admin"], texts=("Alpha.", "Beta.", "Gamma."))
    client = client_for(people["expert"])
    html = client.get(f"/projects/{project.pk}/rank/").content.decode()
    shown = RankAssignment.objects.get(rank_set=made).shown
    positions = [html.index(f'data-response="{pk}"') for pk in shown]
    assert positions == sorted(positions)
    assert f'name="order" value="{",".join(map(str, shown))}"' in html

    answer = client.post(
        f"/projects/{project.pk}/rank/{made.pk}/",
        {"order": ",".join(map(str, shown[::-1]))},
        HTTP_HX_REQUEST="true",
    )
    assert "Ranking saved." in answer.content.decode()
    assert Ranking.objects.get().order == shown[::-1]


def test_a_bad_order_from_the_page_is_shown(people, project):
    made = rank_set(project, people["admin"])
    client = client_for(people["expert"])
    client.get(f"/projects/{project.pk}/rank/")
    answer = client.post(f"/projects/{project.pk}/rank/{made.pk}/", {"order": "1,x"}, HTTP_HX_REQUEST="true")
    assert "order:" in answer.content.decode()


def test_the_leaderboard_page_shows_models_agreement_charts_and_exports(people, project):
    for n in range(3):
        made = pair(
            project,
            people["admin"],
            models=("v1", "v2"),
            texts=(f"a{n}", f"b{n}"),
            question=f"Q{n}?",
            metadata={"category": "billing"},
        )
        judgement_submit(pair_id=made.pk, rater=people["expert"], choice="B")
    html = (
        client_for(people["admin"])
        .get(f"/projects/{project.pk}/leaderboard/?metadata_key=category")
        .content.decode()
    )
    assert 'data-model="v2"' in html and 'data-model="v1"' in html
    assert html.index('data-model="v2"') < html.index('data-model="v1"')
    assert 'id="leaderboard-data"' in html and "chart.umd.min.js" in html
    assert "data-agreement" in html and "format=llamafactory_sharegpt" in html
    assert 'data-value="billing"' in html
    data = json.loads(html.split('id="leaderboard-data" type="application/json">')[1].split("</script>")[0])
    assert [m["model"] for m in data["board"]["models"]] == ["v2", "v1"]


def test_the_leaderboard_page_shows_a_bad_filter(people, project):
    html = (
        client_for(people["admin"]).get(f"/projects/{project.pk}/leaderboard/?source=robots").content.decode()
    )
    assert "source: robots is not one of" in html


def test_the_buttons_make_pairs_and_import_a_file(people, project):
    client = client_for(people["admin"])
    upload = io.BytesIO(json.dumps({"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}).encode())
    upload.name = "pairs.jsonl"
    answer = client.post(
        f"/projects/{project.pk}/leaderboard/pairs/", {"source": "imported", "file": upload}, follow=True
    )
    assert "1 pairs and 0 rank sets made." in answer.content.decode()
    bad = io.BytesIO(b'{"prompt": "Q?"}\n')
    bad.name = "bad.jsonl"
    answer = client.post(
        f"/projects/{project.pk}/leaderboard/pairs/", {"source": "imported", "file": bad}, follow=True
    )
    assert "line 1: chosen: is missing" in answer.content.decode()
    assert Pair.objects.count() == 1


def test_the_menu_offers_compare_and_rank_to_raters_and_the_leaderboard_to_admins(people, project):
    expert = client_for(people["expert"]).get(f"/projects/{project.pk}/compare/").content.decode()
    admin = client_for(people["admin"]).get(f"/projects/{project.pk}/compare/").content.decode()
    assert f"/projects/{project.pk}/rank/" in expert and f"/projects/{project.pk}/leaderboard/" not in expert
    assert f"/projects/{project.pk}/leaderboard/" in admin
