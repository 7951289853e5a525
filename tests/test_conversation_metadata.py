"""Metadata as a filter of the item list (API and browser) and as the dashboard's per-value figures."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Item, Stage
from annotation.selectors import metadata_keys
from annotation.services import item_fields
from review.dashboard import metadata_breakdown

from .workflow_helpers import annotate, review

pytestmark = pytest.mark.django_db


def item_with(project, question, **metadata):
    return Item.objects.create(project=project, **item_fields({"input": question, "metadata": metadata}))


@pytest.fixture
def catalogue(project):
    """Five items: three about IT (one of them Chinese), one about billing, one without a category."""
    return {
        "router": item_with(project, "My router blinks red.", category="it", ticket=7731),
        "vpn": item_with(project, "The VPN drops every hour.", category="it", lang="en"),
        "printer": item_with(project, "打印机不工作。", category="it", lang="zh"),
        "invoice": item_with(project, "Why was I charged twice?", category="billing"),
        "hello": item_with(project, "Hello?"),
    }


def test_the_item_list_api_filters_by_metadata(api, people, project, catalogue):
    client = api(people["annotator"])

    it = client.get(f"/api/projects/{project.pk}/items/?metadata.category=it").json()
    assert it["count"] == 3
    assert {row["id"] for row in it["results"]} == {catalogue[k].pk for k in ("router", "vpn", "printer")}
    assert it["results"][0]["metadata"]["category"] == "it"

    both = client.get(f"/api/projects/{project.pk}/items/?metadata.category=it&metadata.lang=zh").json()
    assert [row["id"] for row in both["results"]] == [catalogue["printer"].pk]


def test_a_number_in_the_query_finds_the_number_in_metadata(api, people, project, catalogue):
    found = api(people["annotator"]).get(f"/api/projects/{project.pk}/items/?metadata.ticket=7731").json()
    assert [row["id"] for row in found["results"]] == [catalogue["router"].pk]


def test_the_metadata_filter_combines_with_the_state_filter(api, people, project, catalogue):
    # given one IT item answered (submitted), the others new
    annotate(project, people["annotator"])
    answered = Item.objects.get(status="submitted")
    client = api(people["annotator"])

    new_it = client.get(f"/api/projects/{project.pk}/items/?metadata.category=it&status=new").json()

    expected = {catalogue[k].pk for k in ("router", "vpn", "printer")} - {answered.pk}
    assert {row["id"] for row in new_it["results"]} == expected


def test_the_browser_item_list_filters_by_metadata(client, people, project, catalogue):
    client.force_login(people["annotator"])

    # a metadata link, ?metadata.category=billing, and the picker's key and value
    linked = client.get(f"/projects/{project.pk}/items/?metadata.category=billing").content.decode()
    picked = client.get(f"/projects/{project.pk}/items/?key=lang&value=zh").content.decode()

    assert f'data-item="{catalogue["invoice"].pk}"' in linked
    assert f'data-item="{catalogue["router"].pk}"' not in linked
    assert "category = billing" in linked  # the filter in force is shown
    assert f'data-item="{catalogue["printer"].pk}"' in picked
    assert f'data-item="{catalogue["vpn"].pk}"' not in picked


def test_the_item_list_page_is_for_members(client, people, project, catalogue):
    client.force_login(people["outsider"])
    assert client.get(f"/projects/{project.pk}/items/").status_code == 404


def test_metadata_keys_are_the_keys_the_items_carry(project, catalogue):
    assert metadata_keys(project=project) == ["category", "lang", "ticket"]


def test_the_dashboard_counts_states_and_approval_per_metadata_value(people, project, catalogue):
    # given, in a two-tier project, answers to all but "hello" ("printer" and "hello" queued last)
    project.review_tiers = 2
    project.save()
    Item.objects.filter(pk=catalogue["printer"].pk).update(priority=-1)
    Item.objects.filter(pk=catalogue["hello"].pk).update(priority=-2)
    annotator, reviewer = people["annotator"], people["domain_reviewer"]
    for _ in range(4):
        annotate(project, annotator)
    # the router answer approved, the vpn and invoice answers sent back; the printer answer waits
    review(project, reviewer, Stage.DOMAIN, "approve")
    review(project, reviewer, Stage.DOMAIN, "reject", comment="Name the VPN client.")
    review(project, reviewer, Stage.DOMAIN, "reject", comment="Which invoice?")
    # and the vpn answer, resubmitted, approved
    annotate(project, annotator, text="Restart the VPN client.")
    approved = review(project, reviewer, Stage.DOMAIN, "approve")
    assert approved.pk == catalogue["vpn"].pk

    # when the dashboard's figures are read for the key `category`
    with CaptureQueriesContext(connection) as queries:
        figures = metadata_breakdown(project=project, key="category")

    # then it took one query, and each category has its items per state and the share of its review
    # decisions that approved
    assert len(queries) == 1
    by_value = {row["value"]: row for row in figures["values"]}
    assert list(by_value) == ["it", "billing", None]  # most items first
    it = by_value["it"]
    assert it["items"] == 3
    assert {s: n for s, n in it["states"].items() if n} == {"approved": 2, "domain_review": 1}
    assert (it["approvals"], it["rejections"], it["approval_rate"]) == (2, 1, 2 / 3)
    billing = by_value["billing"]
    assert {s: n for s, n in billing["states"].items() if n} == {"rework": 1}
    assert billing["approval_rate"] == 0.0
    assert by_value[None]["items"] == 1 and by_value[None]["states"]["new"] == 1
    assert by_value[None]["approval_rate"] is None
    assert figures["more"] is False


def test_the_dashboard_page_shows_the_figures_for_the_chosen_key(client, people, project, catalogue):
    client.force_login(people["admin"])

    by_category = client.get(f"/projects/{project.pk}/dashboard/").content.decode()
    by_lang = client.get(f"/projects/{project.pk}/dashboard/?metadata_key=lang").content.decode()

    # `category` is chosen when the page is opened, and every key the items carry can be picked
    assert '<option value="category" selected>' in by_category and '<option value="ticket">' in by_category
    assert 'data-value="billing"' in by_category
    assert f'href="/projects/{project.pk}/items/?metadata.category=it"' in by_category
    assert 'data-value="zh"' in by_lang and 'data-value="billing"' not in by_lang
