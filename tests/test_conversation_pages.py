"""Conversations on the pages: the workbench's chat (roles, tool calls, folding, escaping, editable turns),
the item page's timeline by turn, and the conversation a rated response answers."""

import re

import pytest

from annotation.models import Item, Stage
from annotation.services import item_fields
from annotation.workflow.transitions import DraftCandidate, item_drafts_store
from review.models import Response

from .workflow_helpers import claim

pytestmark = pytest.mark.django_db

TOOL_CHAT = {
    "system": "You are the help desk of Nordlicht Telecom.",
    "messages": [
        {"role": "user", "content": "Is my line down? <script>alert('x')</script>"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "line_status", "arguments": "{\"customer\":\"7731\"}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"line\":\"down\",\"since\":\"09:12\"}"},
        {"role": "assistant", "content": "Your line is down since 09:12."},
        {"role": "user", "content": "When will it be back?"},
    ],
    "metadata": {"category": "it", "客户": "Zhang Wei"},
}  # fmt: skip


def chat_item(project, row=TOOL_CHAT, draft="Within two hours."):
    item = Item.objects.create(project=project, **item_fields(row))
    if draft:
        item_drafts_store(item_id=item.pk, model_version_id=None, candidates=[DraftCandidate(draft, 0.8)])
    return item


def workbench(client, project, user, stage="annotate"):
    client.force_login(user)
    claim(project, user, stage)
    return client.get(f"/projects/{project.pk}/work/{stage}/").content.decode()


def turn_blocks(page):
    """{turn index: the HTML of that turn's card}."""
    return dict(re.findall(r'<details class="turn[^"]*" data-turn="(\d+)"(.*?)</details>\n', page, re.S))


def test_the_workbench_shows_the_whole_conversation_as_a_chat(client, people, project):
    chat_item(project)

    page = workbench(client, project, people["annotator"])

    # the system prompt, every turn by its role, the tool call and its result readable
    assert "You are the help desk of Nordlicht Telecom." in page
    turns = turn_blocks(page)
    assert sorted(turns, key=int) == ["0", "1", "2", "3", "4"]
    assert '<span class="role">User</span>' in turns["0"]
    assert "<code>line_status</code>" in turns["1"] and "&quot;customer&quot;: &quot;7731&quot;" in turns["1"]
    assert "Tool result" in turns["2"] and "<code>line_status</code>" in turns["2"]
    assert "&quot;since&quot;: &quot;09:12&quot;" in turns["2"]  # the JSON result, indented
    # and the turn under work is highlighted, numbered after them, with the model's draft
    current = page[page.index('id="turn-current"') :]
    assert '<span class="turn-no">6</span>' in current[:400]
    assert 'id="reply-draft">Within two hours.</div>' in current
    # and the metadata is shown
    assert "<dt>客户</dt><dd>Zhang Wei</dd>" in page


def test_text_from_the_file_is_escaped(client, people, project):
    chat_item(project)

    page = workbench(client, project, people["annotator"])

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_earlier_turns_fold_when_the_conversation_is_long(client, people, project):
    # given a three-turn conversation whose first question is long
    long_question = "My router, bought in 2019, " + "keeps blinking red after every storm. " * 40
    row = {"messages": [
        {"role": "user", "content": long_question},
        {"role": "assistant", "content": "Unplug it for ten seconds."},
        {"role": "user", "content": "Still red."},
    ]}  # fmt: skip
    chat_item(project, row)

    turns = turn_blocks(workbench(client, project, people["annotator"]))

    # then the first turn is folded to a one-line summary; the last two stay open
    assert turns["0"].lstrip().startswith("data-folded")
    assert '<span class="turn-summary">My router, bought in 2019, keeps blinking' in turns["0"]
    assert turns["1"].lstrip().startswith("open") and turns["2"].lstrip().startswith("open")


def test_a_short_conversation_stays_open(client, people, project):
    chat_item(project, {"messages": [{"role": "user", "content": "Hi"}]})
    page = workbench(client, project, people["annotator"])
    assert "data-folded" not in page


def test_earlier_assistant_turns_are_editable_only_with_the_setting(client, people, project):
    chat_item(project)
    page = workbench(client, project, people["annotator"])
    assert "data-turn-edit" not in page

    project.edit_all_assistant_turns = True
    project.save()
    page = client.get(f"/projects/{project.pk}/work/annotate/").content.decode()
    # the earlier assistant turn with text posts into the workbench's form; user and tool turns, and a
    # turn that only calls a tool, are not editable
    assert re.findall(r'name="(turn-\d+)" form="act-form"', page) == ["turn-3"]
    assert 'data-original="Your line is down since 09:12."' in page


def test_the_workbench_form_submits_edited_turns(client, people, project):
    # given an editable conversation held by the annotator
    project.edit_all_assistant_turns = True
    project.save()
    item = chat_item(project)
    workbench(client, project, people["annotator"])
    version = Item.objects.get(pk=item.pk).version

    # when the form posts the reply with the turn emptied (line breaks as a browser sends them, CRLF)
    post = {"action": "submit", "version": version, "text": "Within two hours.\r\nSorry for the trouble."}
    client.post(f"/items/{item.pk}/act/", post | {"turn-3": "  "})

    # then nothing is stored: the empty turn is refused, named, and what was typed is shown again
    assert Item.objects.get(pk=item.pk).current_revision is None
    page = client.get(f"/projects/{project.pk}/work/annotate/").content.decode()
    assert "turn 3: the text must not be empty" in page
    assert "Within two hours.\nSorry for the trouble.</textarea>" in page

    # and when the turn is rewritten instead, the answer and the turn are stored, with LF line breaks
    client.post(f"/items/{item.pk}/act/", post | {"turn-3": "Your line has been down\r\nsince 09:12."})
    revision = Item.objects.get(pk=item.pk).current_revision
    assert revision.text == "Within two hours.\nSorry for the trouble."
    assert revision.turn_edits == {"3": "Your line has been down\nsince 09:12."}


def test_the_item_page_names_the_turns_a_revision_changed(client, people, project):
    # given an answer that also rewrote turn 4
    project.edit_all_assistant_turns = True
    project.save()
    item = chat_item(project)
    from annotation.workflow.transitions import item_submit

    held = claim(project, people["annotator"], Stage.ANNOTATE)
    item_submit(item_id=held.pk, user=people["annotator"], text="Within two hours.", version=held.version,
                turns={"3": "Your line has been down since 09:12."})  # fmt: skip
    client.force_login(people["expert"])

    page = client.get(f"/items/{item.pk}/").content.decode()

    # then the conversation shows the edited turn, and the timeline names turn 4 with its diff
    assert "Your line has been down since 09:12." in turn_blocks(page)["3"]
    assert "edited" in turn_blocks(page)["3"]
    change = page[page.index('class="turn-change" data-turn="3"') :]
    assert "Turn 4 · Assistant" in change[:600]
    assert "<del>is</del><ins>has been</ins>" in change[:900]
    # and the metadata links to the items that share it
    assert f'href="/projects/{project.pk}/items/?metadata.category=it"' in page


def test_a_response_is_created_with_the_conversation_it_answers(api, people, project):
    body = {
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "My router blinks red."},
            {"role": "assistant", "content": "Unplug it for ten seconds."},
            {"role": "user", "content": "Still red."},
        ],
        "text": "Call us on 0800 123.",
        "origin": "candidate",
    }
    created = api(people["admin"]).post(f"/api/projects/{project.pk}/responses/", body, format="json")
    assert created.status_code == 201, created.content
    response = Response.objects.get(pk=created.json()["id"])
    assert (response.input, response.system, response.messages) == (
        "Still red.",
        "Be brief.",
        body["messages"],
    )
    assert created.json()["messages"] == body["messages"]


def test_a_response_to_an_unreadable_conversation_is_refused_naming_the_turn(api, people, project):
    body = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}],
        "text": "Hello.",
        "origin": "external",
    }
    refused = api(people["admin"]).post(f"/api/projects/{project.pk}/responses/", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("messages: turn 2")
    assert not Response.objects.exists()


def test_the_rating_page_shows_the_conversation_a_response_answers(client, people, project):
    Response.objects.create(
        project=project,
        input="Still red.",
        system="Be brief.",
        messages=[
            {"role": "user", "content": "My router blinks red."},
            {"role": "assistant", "content": "Unplug it for ten seconds."},
            {"role": "user", "content": "Still red."},
        ],
        text="Call us on 0800 123.",
        origin="candidate",
    )
    client.force_login(people["expert"])

    page = client.get(f"/projects/{project.pk}/rate/").content.decode()

    assert "Unplug it for ten seconds." in page and "Be brief." in page
    assert list(turn_blocks(page)) == ["0", "1", "2"]
    assert "Call us on 0800 123." in page


def test_the_chat_is_in_chinese(client, people, project):
    chat_item(project)
    client.force_login(people["annotator"])
    claim(project, people["annotator"], Stage.ANNOTATE)

    page = client.get(
        f"/projects/{project.pk}/work/annotate/", HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()

    assert '<span class="role">助手</span>' in page and '<span class="role">用户</span>' in page
    assert "你撰写的轮次" in page and "工具结果" in page
