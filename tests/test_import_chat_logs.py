"""Chat logs into PostgreSQL through the import paths: the API upload and preview, the job a worker runs,
and `manage.py import_items --format chat_log`. Conversations become items of source `log`."""

import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from annotation.compliance import compliance_flags_for_items
from annotation.importing import import_job_run
from annotation.models import ImportJob, Item, ItemSource
from tests.import_helpers import jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(request, settings, tmp_path):
    # A worker reads uploads from the MEDIA_ROOT it shares with the web process; other tests keep theirs.
    if "celery_worker_process" not in request.fixturenames:
        settings.MEDIA_ROOT = tmp_path / "media"


def msg(session, at, role, text, **extra):
    return {"session_id": session, "timestamp": at, "role": role, "content": text, **extra}


# A day of a shop's support chat: one session flagged (转人工, then a complaint), one English session the
# same customer id reopened the next morning, a line the shipper sent twice, and the session keys
# (channel, user agent) beside each message's id.
UA = "Mozilla/5.0 (Linux; Android 15) AppleWebKit/537.36"
LOG = [
    msg(
        "wx-88",
        "2026-12-01T09:00:00Z",
        "user",
        "你好，我的订单显示已签收但我没收到",
        channel="wechat",
        msg_id="1",
    ),
    msg("wx-88", "2026-12-01T09:00:04Z", "bot", "请您先确认是否放在了快递柜。", channel="wechat", msg_id="2"),
    msg("wx-88", "2026-12-01T09:01:10Z", "user", "没有，转人工", channel="wechat", msg_id="3"),
    # sent twice by the shipper
    msg("wx-88", "2026-12-01T09:01:10Z", "user", "没有，转人工", channel="wechat", msg_id="3"),
    msg("wx-88", "2026-12-01T09:01:30Z", "system", "客服小李已接入", channel="wechat", msg_id="4"),
    msg(
        "wx-88", "2026-12-01T09:02:00Z", "agent", "您好，我帮您联系快递员核实。", channel="wechat", msg_id="5"
    ),
    msg("web-12", "2026-12-01T21:10:00Z", "user", "How do I return a jacket?", channel="web", user_agent=UA),
    msg("web-12", "2026-12-01T21:10:05Z", "bot", "Start a return from Orders.", channel="web", user_agent=UA),
    msg(
        "web-12",
        "2026-12-02T08:30:00Z",
        "user",
        "This is unacceptable, the label never came",
        channel="web",
        user_agent=UA,
    ),
    msg(
        "web-12",
        "2026-12-02T08:30:07Z",
        "bot",
        "Sorry! I have e-mailed a new label.",
        channel="web",
        user_agent=UA,
    ),
]


def upload(client, project, content: bytes, path="imports/", **fields):
    data = {"file": SimpleUploadedFile("support.jsonl", content), "format": "chat_log", **fields}
    return client.post(f"/api/projects/{project.pk}/{path}", data, format="multipart")


def import_log(api, people, project, content: bytes, **fields) -> dict:
    """Upload as the project admin and run the job as the worker does; the job as the API shows it."""
    client = api(people["admin"])
    response = upload(client, project, content, **fields)
    assert response.status_code == 202, response.json()
    import_job_run(job_id=response.json()["id"])
    return client.get(f"/api/imports/{response.json()['id']}/").json()


def test_a_log_becomes_items_of_source_log_with_the_report_counts(api, people, project):
    # when the day's log is uploaded and run
    job = import_log(api, people, project, jsonl(*LOG))
    # then three conversations arrived: wx-88, and web-12 twice (a night between its messages)
    assert job["status"] == "succeeded", job
    assert job["counts"]["imported"] == 3
    assert job["format_report"] == {
        "messages": 9,
        "duplicate_messages": 1,
        "sessions": 2,
        "conversations": 3,
        "split_by_gap": 1,
        "without_user": 0,
        "truncated": False,
    }
    assert job["options"] == {"session_gap_minutes": 30.0}
    assert "1 duplicate message(s) dropped" in job["message"]
    items = Item.objects.filter(project=project).order_by("pk")
    assert set(items.values_list("source", flat=True)) == {ItemSource.LOG}
    wx = items.get(metadata__session_id="wx-88")
    assert [t["content"] for t in wx.messages] == [
        "你好，我的订单显示已签收但我没收到",
        "请您先确认是否放在了快递柜。",
        "没有，转人工",
    ]
    assert (wx.input, wx.reference_output) == ("没有，转人工", "您好，我帮您联系快递员核实。")
    assert wx.metadata["channel"] == "wechat"
    assert wx.metadata["system_events"][0]["content"] == "客服小李已接入"
    assert wx.reference_extra["log_role"] == "agent"


def test_a_multi_day_session_becomes_two_items(api, people, project):
    import_log(api, people, project, jsonl(*LOG))
    parts = Item.objects.filter(project=project, metadata__session_id="web-12").order_by("pk")
    assert [(p.metadata["session_part"], p.input) for p in parts] == [
        (1, "How do I return a jacket?"),
        (2, "This is unacceptable, the label never came"),
    ]
    assert parts[1].metadata["started_at"] == "2026-12-02T08:30:00Z"
    assert parts[0].metadata["user_agent"] == UA


def test_flags_are_stored_on_the_item_and_as_compliance_flags(api, people, project):
    job = import_log(api, people, project, jsonl(*LOG))
    wx = Item.objects.get(project=project, metadata__session_id="wx-88")
    complaint = Item.objects.get(project=project, metadata__session_part=2)
    calm = Item.objects.get(project=project, metadata__session_id="web-12", metadata__session_part=1)
    assert (wx.metadata["flags"], complaint.metadata["flags"], calm.metadata["flags"]) == (
        ["asked_for_person"],
        ["complained"],
        [],
    )
    # the review UI's flags show the phrases found
    shown = compliance_flags_for_items(item_ids=[wx.pk, complaint.pk, calm.pk])
    assert shown == {wx.pk: ["转人工"], complaint.pk: ["unacceptable"]}
    assert job["counts"]["flagged"] == 2


def test_the_projects_phrases_decide_the_flags(api, people, project):
    project.log_person_phrases = ["快递员"]
    project.log_complaint_phrases = []
    project.save()
    import_log(api, people, project, jsonl(*LOG))
    flagged = Item.objects.filter(project=project).exclude(metadata__flags=[])
    # 快递员 is the agent's word, not the user's: nothing is flagged
    assert not flagged.exists()


def test_a_reimport_skips_the_conversations_already_there(api, people, project):
    import_log(api, people, project, jsonl(*LOG))
    # when the same log and one new session come again
    new = msg("web-99", "2026-12-03T10:00:00Z", "user", "Do you ship to Macau?", channel="web")
    job = import_log(api, people, project, jsonl(*LOG, new))
    assert (job["counts"]["imported"], job["counts"]["duplicates"]) == (1, 3)
    assert Item.objects.filter(project=project).count() == 4


def test_the_session_gap_is_an_import_option(api, people, project):
    job = import_log(api, people, project, jsonl(*LOG), session_gap_minutes=24 * 60)
    assert job["format_report"]["split_by_gap"] == 0
    assert Item.objects.filter(project=project, metadata__session_id="web-12").count() == 1


def test_a_bad_line_imports_nothing_and_is_named(api, people, project):
    bad = {"session_id": "wx-88", "time": "昨天", "sender": "user", "text": "?"}
    job = import_log(api, people, project, jsonl(*LOG, bad))
    assert job["status"] == "failed"
    assert job["errors"][0]["line"] == len(LOG) + 1 and job["errors"][0]["field"] == "time"
    assert "unparseable timestamp '昨天'" in job["errors"][0]["reason"]
    assert not Item.objects.filter(project=project).exists()


def test_skip_invalid_imports_the_rest(api, people, project):
    bad = msg("wx-88", "2026-12-01T09:01:40Z", "moderator", "...")
    job = import_log(api, people, project, jsonl(*LOG, bad), skip_invalid=True)
    assert (job["status"], job["counts"]["imported"], job["counts"]["invalid"]) == ("succeeded", 3, 1)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"session_gap_minutes": 0}, "session_gap_minutes: must be a number of minutes above 0"),
        ({"mapping": json.dumps({"input": "text"})}, "mapping: a chat log is read by its own keys"),
        ({"format": "jsonl", "session_gap_minutes": 10}, "session_gap_minutes: only the chat_log format"),
    ],
)
def test_options_the_format_does_not_take_are_refused_naming_the_field(api, people, project, fields, reason):
    response = upload(api(people["admin"]), project, jsonl(*LOG), **fields)
    assert response.status_code == 400
    assert reason in json.dumps(response.json(), ensure_ascii=False)
    assert not ImportJob.objects.exists()


def test_the_preview_shows_conversations_and_the_counts(api, people, project):
    response = upload(api(people["admin"]), project, jsonl(*LOG), path="imports/preview/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["format"] == "chat_log"
    assert [row["metadata"]["session_id"] for row in body["rows"]] == ["wx-88", "web-12", "web-12"]
    assert body["format_report"]["duplicate_messages"] == 1
    assert body["complete"] is True
    assert not Item.objects.exists()


def test_only_project_admins_import_logs(api, people, project):
    response = upload(api(people["annotator"]), project, jsonl(*LOG))
    assert response.status_code == 403


def test_the_command_imports_a_log(project, tmp_path, capsys):
    path = tmp_path / "support.jsonl"
    path.write_bytes(jsonl(*LOG))
    call_command("import_items", str(path), project=project.slug, format="chat_log", verbosity=0)
    out = capsys.readouterr().out
    assert "3 imported; 0 already present; 3 conversation(s) from 9 message(s) in 2 session(s)" in out
    assert Item.objects.filter(project=project, source=ItemSource.LOG).count() == 3
    # and with a gap of a day the overnight session stays whole
    Item.objects.all().delete()
    call_command(
        "import_items",
        str(path),
        project=project.slug,
        format="chat_log",
        session_gap_minutes=1440,
        verbosity=0,
    )
    assert Item.objects.filter(project=project).count() == 2


def test_the_command_refuses_a_gap_that_is_not_a_duration(project, tmp_path):
    path = tmp_path / "support.jsonl"
    path.write_bytes(jsonl(*LOG))
    with pytest.raises(CommandError, match="session_gap_minutes: must be a number of minutes above 0"):
        call_command(
            "import_items",
            str(path),
            project=project.slug,
            format="chat_log",
            session_gap_minutes=-5,
            verbosity=0,
        )


def test_the_import_page_takes_the_gap_too(client, people, project):
    client.force_login(people["admin"])
    content = jsonl(*LOG)
    data = {
        "file": SimpleUploadedFile("support.jsonl", content),
        "format": "chat_log",
        "session_gap_minutes": "1440",
    }
    html = client.post(f"/projects/{project.pk}/imports/preview/", data).content.decode()
    # the overnight session is one conversation: two rows, not three
    assert html.count('class="preview-row"') == 2
    data["file"] = SimpleUploadedFile("support.jsonl", content)
    response = client.post(f"/projects/{project.pk}/imports/", data)
    assert response.status_code == 302
    assert ImportJob.objects.get().options == {"session_gap_minutes": 1440.0}


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_worker_imports_an_uploaded_log(celery_worker_process, api, people, project):
    # given a worker that shares MEDIA_ROOT with the web process (both from HANDOVER_VAR_DIR)
    client = api(people["admin"])
    response = upload(client, project, jsonl(*LOG), session_gap_minutes=24 * 60)
    assert response.status_code == 202, response.json()
    # when the worker has run it
    deadline = time.monotonic() + 60
    while (job := client.get(f"/api/imports/{response.json()['id']}/").json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    # then the job's gap was the worker's: two conversations, both items of source log
    assert (job["status"], job["counts"]["imported"]) == ("succeeded", 2), job
    assert set(Item.objects.filter(project=project).values_list("source", flat=True)) == {ItemSource.LOG}


def test_the_flag_phrases_are_project_settings_checked_by_name(api, people, project):
    client = api(people["admin"])
    url = f"/api/projects/{project.pk}/"
    assert "转人工" in client.get(url).json()["log_person_phrases"]
    response = client.patch(url, {"log_complaint_phrases": ["差评", " "]}, format="json")
    assert response.status_code == 400
    assert "log_complaint_phrases" in json.dumps(response.json())
    response = client.patch(url, {"log_complaint_phrases": ["差评"]}, format="json")
    assert (response.status_code, response.json()["log_complaint_phrases"]) == (200, ["差评"])
