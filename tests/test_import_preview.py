"""The import preview: the first rows as they will be stored, the key report and the errors, creating
nothing; through the API and as the fragment the import page swaps in."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.importing import preview as preview_module
from annotation.models import AuditEvent, ImportJob, Item
from tests.import_helpers import jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def preview(client, project, name: str, content: bytes, **fields):
    if isinstance(fields.get("mapping"), dict):
        fields["mapping"] = json.dumps(fields["mapping"])
    data = {"file": SimpleUploadedFile(name, content), **fields}
    return client.post(f"/api/projects/{project.pk}/imports/preview/", data, format="multipart")


CHAT = [
    {"id": f"c{n}", "topic": "退款", "conversations": [
        {"from": "human", "value": f"问题 {n}"}, {"from": "gpt", "value": f"回答 {n}"},
        {"from": "human", "value": "还有呢?"}, {"from": "gpt", "value": "没有了。"}]}
    for n in range(8)
]  # fmt: skip


def test_preview_answers_the_first_rows_as_they_will_be_stored(api, people, project):
    response = preview(api(people["admin"]), project, "chat.jsonl", jsonl(*CHAT))

    assert response.status_code == 200
    body = response.json()
    assert (body["format"], body["records_read"], body["complete"]) == ("sharegpt", 8, True)
    assert len(body["rows"]) == 5
    assert body["rows"][0] == {
        "line": 1, "external_id": "c0", "system": "",
        "messages": [{"role": "user", "content": "问题 0"}, {"role": "assistant", "content": "回答 0"},
                     {"role": "user", "content": "还有呢?"}],
        "reference_output": "没有了。", "reference_extra": {}, "tools": [], "metadata": {"topic": "退款"},
    }  # fmt: skip
    assert body["keys"] == {
        "id": {"to": "external_id", "rows": 8},
        "conversations": {"to": "messages", "rows": 8},
        "topic": {"to": "metadata.topic", "rows": 8},
    }


def test_preview_creates_nothing(api, people, project):
    preview(api(people["admin"]), project, "chat.jsonl", jsonl(*CHAT))

    assert not ImportJob.objects.exists() and not Item.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="import").exists()


def test_preview_lists_the_errors_in_what_it_read(api, people, project):
    bad = {"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "q2"}]}

    body = preview(api(people["admin"]), project, "chat.jsonl", jsonl(CHAT[0], bad)).json()

    assert (body["errors_total"], body["records_invalid"]) == (1, 1)
    assert body["errors"] == [{"line": 2, "field": "conversations", "turn": 2,
                               "reason": "an assistant turn is missing before this user turn"}]  # fmt: skip


def test_preview_shows_rows_redacted_when_the_import_would_redact(api, people, project):
    content = jsonl({"input": "Mail li.lei@example.com", "contact": "li.lei@example.com"})

    body = preview(api(people["admin"]), project, "q.jsonl", content, redact=True).json()

    assert body["rows"][0]["messages"] == [{"role": "user", "content": "Mail [EMAIL]"}]
    assert body["rows"][0]["metadata"] == {"contact": "[EMAIL]"}


def test_preview_of_a_long_file_reads_its_start_and_says_so(api, people, project, monkeypatch):
    monkeypatch.setattr(preview_module, "PREVIEW_MAX_RECORDS", 3)

    body = preview(
        api(people["admin"]), project, "q.jsonl", jsonl(*({"input": f"q{n}"} for n in range(10)))
    ).json()

    assert (body["records_read"], body["complete"]) == (3, False)
    assert body["keys"] == {"input": {"to": "input", "rows": 3}}


def test_preview_follows_the_mapping(api, people, project):
    body = preview(api(people["admin"]), project, "q.jsonl", jsonl({"ask": "q", "input": "x"}),
                   mapping={"input": "ask"}).json()  # fmt: skip
    assert body["rows"][0]["metadata"] == {"input": "x"}


def test_preview_refuses_what_the_import_refuses(api, people, project, settings):
    client = api(people["admin"])
    assert (
        preview(client, project, "q.jsonl", jsonl({"input": "a"}), mapping={"prompt": "q"}).status_code == 400
    )
    assert preview(client, project, "q.csv", b"input\na\n", format="sharegpt").status_code == 400
    settings.IMPORT_MAX_FILE_BYTES = 10
    assert preview(client, project, "q.jsonl", jsonl({"input": "a" * 50})).status_code == 413


@pytest.mark.parametrize(
    "name, expected", [("outsider", 404), ("annotator", 403), ("expert", 403), ("admin", 200)]
)
def test_only_project_admins_can_preview(api, people, project, name, expected):
    assert preview(api(people[name]), project, "q.jsonl", jsonl({"input": "a"})).status_code == expected


# --- the page fragment -----------------------------------------------------------------------------------


def page_preview(client, project, content: bytes, name="chat.jsonl", **fields):
    data = {"file": SimpleUploadedFile(name, content), "format": "", **fields}
    return client.post(f"/projects/{project.pk}/imports/preview/", data)


def test_page_preview_shows_keys_rows_and_a_confirm_button(client, people, project):
    client.force_login(people["admin"])

    html = page_preview(client, project, jsonl(*CHAT)).content.decode()

    assert 'id="import-keys"' in html and "<code>metadata.topic</code>" in html
    assert html.count('class="preview-row"') == 5 and "问题 0" in html and "没有了。" in html
    assert 'id="import-confirm"' in html
    assert not ImportJob.objects.exists()


def test_page_preview_with_errors_offers_no_import_until_invalid_rows_are_skipped(client, people, project):
    client.force_login(people["admin"])
    content = jsonl(CHAT[0], {"conversations": [{"from": "gpt", "value": "a"}]})

    blocked = page_preview(client, project, content).content.decode()
    skipping = page_preview(client, project, content, skip_invalid="on").content.decode()

    assert "a conversation starts with the user, not the assistant" in blocked
    assert 'id="import-confirm"' not in blocked and "disabled" in blocked
    assert 'id="import-confirm"' in skipping


def test_page_preview_without_a_file_asks_for_one(client, people, project):
    client.force_login(people["admin"])
    response = client.post(f"/projects/{project.pk}/imports/preview/", {"format": "jsonl"})
    assert response.status_code == 200 and "Pick a file" in response.content.decode()


@pytest.mark.parametrize("name, expected", [("outsider", 404), ("annotator", 403), ("admin", 200)])
def test_page_preview_is_for_project_admins(client, people, project, name, expected):
    client.force_login(people[name])
    assert page_preview(client, project, jsonl({"input": "a"})).status_code == expected
