"""A conversation's day in a real headless Chromium: annotated in the workbench's chat (an earlier turn
edited too), reviewed, and its timeline naming the changed turn; metadata on the list and the dashboard."""

import pytest
from playwright.sync_api import expect

from annotation.models import Item, ItemStatus
from annotation.services import item_fields
from annotation.workflow.transitions import DraftCandidate, item_drafts_store

from .conftest import log_in, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

LONG_QUESTION = (
    "Since the storm last night my router (a Fritz!Box 7590, bought in 2019) blinks red every few "
    "minutes. " * 12
).strip()
DRAFT = "A technician can check the line within two hours."
TURNS = [
    {"role": "user", "content": LONG_QUESTION},
    {"role": "assistant", "content": "Unplug it for ten seconds, then plug it back in."},
    {"role": "user", "content": "Done. Still red. 现在怎么办？"},
]


@pytest.fixture
def conversation(project):
    project.edit_all_assistant_turns = True
    project.review_tiers = 2
    project.save()
    item = Item.objects.create(
        project=project,
        external_id="ticket-7731",
        **item_fields(
            {
                "system": "You are the help desk of Nordlicht Telecom. Never promise a time.",
                "messages": TURNS,
                "metadata": {"category": "it", "lang": "de", "priority": "high"},
            }
        ),
    )
    item_drafts_store(item_id=item.pk, model_version_id=None, candidates=[DraftCandidate(DRAFT, 0.77)])
    return item


def test_a_conversation_is_annotated_reviewed_and_its_timeline_names_the_turn(
    page, live_asgi, people, project, conversation
):
    # the annotator takes the task: the whole conversation as a chat, the long first turn folded
    log_in(page, live_asgi, "annotator")
    page.goto(f"{live_asgi}/projects/{project.pk}/work/annotate/")
    page.keyboard.press("n")
    chat = page.locator("#chat")
    expect(chat.locator("details.turn[data-turn]")).to_have_count(3)
    expect(chat.locator('details[data-turn="0"]')).not_to_have_attribute("open", "")
    expect(chat.locator('details[data-turn="1"]')).to_have_attribute("open", "")
    expect(chat.get_by_text("Done. Still red. 现在怎么办？")).to_be_visible()
    expect(page.get_by_text("Never promise a time.")).to_be_visible()
    expect(page.locator("#item-metadata")).to_contain_text("category")
    # and the turn under work, highlighted, holds the model's draft
    current = page.locator("#turn-current")
    expect(current).to_contain_text("4")
    expect(current.locator("#reply-draft")).to_have_text(DRAFT)
    expect(page.locator("#answer")).to_have_value(DRAFT)
    shot(page, "conversation-annotate")

    # T opens the folded turns, and folds them back
    page.keyboard.press("t")
    expect(chat.locator('details[data-turn="0"]')).to_have_attribute("open", "")
    expect(chat.get_by_text("Fritz!Box 7590").first).to_be_visible()
    page.keyboard.press("t")
    expect(chat.locator('details[data-turn="0"]')).not_to_have_attribute("open", "")

    # the annotator rewrites the earlier assistant turn and the reply; the page autosaves both
    turn = page.locator("#turn-1")
    turn.fill("Unplug it for a full minute, then plug it back in.")
    expect(chat.locator('details[data-turn="1"]')).to_have_class("turn turn-assistant edited")
    page.locator("#answer").fill("A technician will check your line today; we will call you first.")
    page.wait_for_function("document.getElementById('workbench').dataset.autosaved === 'yes'", timeout=10_000)
    shot(page, "conversation-annotate-edited")
    page.locator("#answer").press("Control+Enter")
    expect(page.get_by_text("Submitted. Here is the next task.")).to_be_visible()
    revision = Item.objects.get(pk=conversation.pk).current_revision
    assert revision.turn_edits == {"1": "Unplug it for a full minute, then plug it back in."}

    # the reviewer sees the same conversation, the edited turn marked, and approves
    page.context.clear_cookies()
    log_in(page, live_asgi, "domain_reviewer")
    page.goto(f"{live_asgi}/projects/{project.pk}/work/domain/")
    page.locator("#take-next").click()
    edited = page.locator('#chat details[data-turn="1"]')
    expect(edited.locator(".edited-badge")).to_be_visible()
    expect(page.locator("#turn-1")).to_have_value("Unplug it for a full minute, then plug it back in.")
    expect(page.locator("#reply-under-review")).to_contain_text("we will call you first")
    expect(page.locator("#review-diff ins").first).to_be_visible()
    shot(page, "conversation-review")
    page.locator("#approve-btn").click()
    expect(page.get_by_text("You hold no task here.")).to_be_visible()
    assert Item.objects.get(pk=conversation.pk).status == ItemStatus.APPROVED

    # and the item's timeline names the changed turns: turn 2 (assistant) and the reply, turn 4
    page.goto(f"{live_asgi}/items/{conversation.pk}/")
    expect(page.locator("#item-status")).to_have_text("Approved")
    submit = page.locator('#timeline li[data-action="item.submit"]')
    expect(submit.locator(".turn-change")).to_have_count(2)
    expect(submit.locator('.turn-change[data-turn="1"]')).to_contain_text("Turn 2 · Assistant")
    expect(submit.locator('.turn-change[data-turn="1"] ins')).to_have_text("a full minute")
    expect(submit.locator('.turn-change[data-turn="3"]')).to_contain_text("the reply")
    shot(page, "conversation-timeline")


def test_metadata_filters_the_item_list_and_breaks_down_the_dashboard(
    page, live_asgi, people, project, conversation
):
    Item.objects.create(
        project=project, **item_fields({"input": "Why twice?", "metadata": {"category": "billing"}})
    )

    # the admin follows an item's metadata to the items that share it
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/items/{conversation.pk}/")
    page.locator("#item-metadata").get_by_role("link", name="it", exact=True).click()
    expect(page.locator("#items tbody tr")).to_have_count(1)
    expect(page.locator("#active-filters")).to_contain_text("category = it")
    shot(page, "items-by-metadata")

    # and the dashboard counts items per category, with a key picker
    page.goto(f"{live_asgi}/projects/{project.pk}/dashboard/")
    table = page.locator("#metadata-breakdown")
    expect(table.locator('tr[data-value="it"]')).to_contain_text("1")
    expect(table.locator('tr[data-value="billing"]')).to_be_visible()
    page.locator("#metadata-key").select_option("lang")
    page.get_by_role("button", name="Show").click()
    expect(page.locator('#metadata-breakdown tr[data-value="de"]')).to_be_visible()
    page.locator("#metadata-figures").scroll_into_view_if_needed()
    shot(page, "dashboard-metadata")
