"""Imports through the REST API: a job per file, atomic, line-numbered errors, no duplicates."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.importing import import_job_run, jobs
from annotation.models import AuditEvent, ComplianceFlag, ImportJob, Item
from tests.import_helpers import jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(client, project, name: str, content: bytes, **fields):
    data = {"file": SimpleUploadedFile(name, content), **fields}
    if isinstance(data.get("mapping"), dict):
        data["mapping"] = json.dumps(data["mapping"])
    return client.post(f"/api/projects/{project.pk}/imports/", data, format="multipart")


def import_file(api, people, project, name, content, **fields) -> dict:
    """Upload as the project admin, run the job as the worker would; the job as the API shows it."""
    client = api(people["admin"])
    response = upload(client, project, name, content, **fields)
    assert response.status_code == 202, response.json()
    import_job_run(job_id=response.json()["id"])
    return client.get(f"/api/imports/{response.json()['id']}/").json()


def test_upload_answers_a_queued_job(api, people, project):
    response = upload(api(people["admin"]), project, "q.jsonl", jsonl({"input": "Hi?"}))
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert response.json()["progress"]["bytes_total"] == len(jsonl({"input": "Hi?"}))


def test_upload_keeps_the_file_under_media_root(api, people, project, settings):
    response = upload(api(people["admin"]), project, "q.jsonl", jsonl({"input": "Hi?"}))
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert str(settings.MEDIA_ROOT) in job.file.path


def test_jsonl_rows_become_items_in_file_order(api, people, project):
    job = import_file(
        api, people, project, "q.jsonl", jsonl({"input": "one"}, {"input": "two", "context": "c"})
    )
    assert job["status"] == "succeeded"
    assert job["counts"] == {"read": 2, "imported": 2, "duplicates": 0, "invalid": 0, "flagged": 0}
    assert list(Item.objects.filter(project=project).values_list("input", "system", "source")) == [
        ("one", "", "import"),
        ("two", "c", "import"),
    ]


def test_import_is_audited(api, people, project):
    import_file(api, people, project, "q.jsonl", jsonl({"input": "one"}))
    actions = list(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert [a for a in actions if a.startswith("import")] == [
        "import.create",
        "import.start",
        "import.finish",
    ]


def test_reimport_with_external_ids_creates_nothing_new(api, people, project):
    content = jsonl({"input": "one", "external_id": "a"}, {"input": "two", "external_id": "b"})
    import_file(api, people, project, "q.jsonl", content)
    job = import_file(api, people, project, "q.jsonl", content)
    assert job["counts"]["imported"] == 0 and job["counts"]["duplicates"] == 2
    assert Item.objects.filter(project=project).count() == 2


def test_reimport_without_external_ids_is_deduplicated_by_content(api, people, project):
    content = jsonl({"input": "one"}, {"input": "two"})
    import_file(api, people, project, "q.jsonl", content)
    job = import_file(api, people, project, "q.jsonl", jsonl({"input": "two"}, {"input": "three"}))
    assert (job["counts"]["imported"], job["counts"]["duplicates"]) == (1, 1)
    assert Item.objects.filter(project=project).count() == 3


def test_repeated_content_within_a_file_is_imported_once(api, people, project):
    job = import_file(api, people, project, "q.jsonl", jsonl({"input": "same"}, {"input": "same"}))
    assert (job["counts"]["imported"], job["counts"]["duplicates"]) == (1, 1)


def test_same_external_id_in_another_project_is_a_new_item(api, people, project):
    from tests.factories import ItemFactory

    ItemFactory(external_id="a")  # in a different project
    job = import_file(api, people, project, "q.jsonl", jsonl({"input": "one", "external_id": "a"}))
    assert job["counts"]["imported"] == 1


@pytest.mark.parametrize(
    "name, content, fields, expected",
    [
        ("q.csv", b"question,answer,key\nWhat?,That,k1\n", {"mapping": {"input": "question",
         "reference_output": "answer", "external_id": "key"}}, ("What?", "That", "k1")),
        ("q.json", b'[{"input": "What?", "reference_output": "That", "external_id": "k1"}]', {},
         ("What?", "That", "k1")),
        ("ls.json", b'[{"id": 7, "data": {"text": "What?"}}]', {}, ("What?", "", "7")),
        ("a.json", b'[{"instruction": "What?", "input": "", "output": "That", "id": "k1"}]', {},
         ("What?", "That", "k1")),
        ("s.jsonl", jsonl({"id": "k1", "conversations": [{"from": "human", "value": "What?"},
                                                         {"from": "gpt", "value": "That"}]}), {},
         ("What?", "That", "k1")),
        ("o.jsonl", jsonl({"id": "k1", "messages": [{"role": "user", "content": "What?"},
                                                    {"role": "assistant", "content": "That"}]}), {},
         ("What?", "That", "k1")),
    ],
    ids=["csv", "json", "label_studio", "alpaca", "sharegpt", "openai"],
)  # fmt: skip
def test_every_format_imports(api, people, project, name, content, fields, expected):
    job = import_file(api, people, project, name, content, **fields)
    assert job["status"] == "succeeded", job
    item = Item.objects.get(project=project)
    assert (item.input, item.reference_output, item.external_id) == expected


def test_format_can_be_forced(api, people, project):
    # given a JSON Lines file with a misleading extension
    job = import_file(api, people, project, "q.txt", jsonl({"input": "one"}), format="jsonl")
    assert job["status"] == "succeeded" and job["format"] == "jsonl"


def test_utf8_with_bom_is_fine(api, people, project):
    job = import_file(api, people, project, "q.csv", "\ufeffinput\n你好\n".encode())
    assert job["status"] == "succeeded"
    assert Item.objects.get(project=project).input == "你好"


BAD_INPUTS = [
    ("malformed_json_line", "q.jsonl", b'{"input": "ok"}\n{"input": \n', 2, None, "malformed JSON"),
    ("missing_input", "q.jsonl", jsonl({"input": "ok"}, {"context": "no input"}), 2, "input",
     "input field is missing"),
    ("empty_input", "q.jsonl", jsonl({"input": "ok"}, {"input": "   "}), 2, "input", "input field is empty"),
    ("wrong_type", "q.jsonl", jsonl({"input": "ok"}, {"input": 42}), 2, "input",
     "expected text, found a number"),
    ("field_over_limit", "q.jsonl", jsonl({"input": "ok"}, {"input": "x" * 40_000}), 2, "input",
     "over the 32,768-byte limit"),
    ("not_utf8", "q.jsonl", b'{"input": "ok"}\n{"input": "caf\xe9"}\n', 2, None, "not valid UTF-8"),
    ("ragged_csv", "q.csv", b"input,context\na,b\nc\n", 3, None, "row has 1 cells but the header has 2"),
    ("duplicate_external_id", "q.jsonl",
     jsonl({"input": "a", "external_id": "x"}, {"input": "b", "external_id": "x"}), 2, "external_id",
     "duplicate external_id 'x' (first on line 1)"),
    ("empty_file", "q.jsonl", b"", 1, None, "file is empty"),
    ("json_not_an_array", "q.json", b'{"input": "a"}', 1, None, "expected a JSON array of objects"),
    ("json_array_of_non_objects", "q.json", b'[{"input": "a"}, 3]', 2, None, "record is a number"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, content, line, field, reason",
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_fails_with_a_line_numbered_error_and_imports_nothing(
    api, people, project, name, content, line, field, reason
):
    job = import_file(api, people, project, name, content)
    assert job["status"] == "failed"
    assert "nothing was imported" in job["message"]
    error = job["errors"][0]
    assert (error["line"], error["field"]) == (line, field)
    assert reason in error["reason"]
    assert not Item.objects.filter(project=project).exists()


def test_file_over_the_size_limit_is_refused_with_413(api, people, project, settings):
    settings.IMPORT_MAX_FILE_BYTES = 100
    response = upload(
        api(people["admin"]), project, "q.jsonl", jsonl(*({"input": f"q{i}"} for i in range(20)))
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not ImportJob.objects.exists()


def test_skip_invalid_imports_the_valid_rows_and_reports_the_others(api, people, project):
    content = jsonl({"input": "ok"}, {"input": ""}, {"input": "fine"})
    job = import_file(api, people, project, "q.jsonl", content, skip_invalid=True)
    assert job["status"] == "succeeded"
    assert job["counts"] == {"read": 3, "imported": 2, "duplicates": 0, "invalid": 1, "flagged": 0}
    assert [(e["line"], e["reason"]) for e in job["errors"]] == [(2, "input field is empty")]
    assert list(Item.objects.filter(project=project).values_list("input", flat=True)) == ["ok", "fine"]


def test_only_the_first_100_errors_are_listed_with_the_total(api, people, project):
    content = jsonl(*({"input": ""} for _ in range(150)))
    job = import_file(api, people, project, "q.jsonl", content)
    assert len(job["errors"]) == 100 and job["errors_total"] == 150 and job["errors_truncated"]
    assert job["counts"]["invalid"] == 150


def test_unknown_mapping_field_is_a_400(api, people, project):
    response = upload(
        api(people["admin"]), project, "q.jsonl", jsonl({"input": "a"}), mapping={"prompt": "q"}
    )
    assert response.status_code == 400
    assert "unknown fields prompt" in response.json()["error"]["message"]
    assert not ImportJob.objects.exists()


def test_mapping_that_is_not_json_is_a_400(api, people, project):
    response = upload(api(people["admin"]), project, "q.jsonl", jsonl({"input": "a"}), mapping="{nope")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("mapping:")


def test_unknown_format_is_a_400(api, people, project):
    response = upload(api(people["admin"]), project, "q.jsonl", jsonl({"input": "a"}), format="xlsx")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("format:")


def test_unknown_form_field_is_a_400(api, people, project):
    response = upload(api(people["admin"]), project, "q.jsonl", jsonl({"input": "a"}), colour="red")
    assert response.status_code == 400
    assert "colour" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    "name, expected", [("outsider", 404), ("annotator", 403), ("expert", 403), ("admin", 202), ("staff", 202)]
)
def test_only_project_admins_can_import(api, people, project, name, expected):
    response = upload(api(people[name]), project, "q.jsonl", jsonl({"input": "a"}))
    assert response.status_code == expected


@pytest.mark.parametrize("name, expected", [("outsider", 404), ("annotator", 403), ("admin", 200)])
def test_only_project_admins_see_an_import(api, people, project, name, expected):
    job_id = upload(api(people["admin"]), project, "q.jsonl", jsonl({"input": "a"})).json()["id"]
    assert api(people[name]).get(f"/api/imports/{job_id}/").status_code == expected


def test_unknown_import_is_a_404(api, people):
    assert api(people["admin"]).get("/api/imports/999999/").status_code == 404


def test_project_admins_list_the_project_imports(api, people, project):
    upload(api(people["admin"]), project, "q.jsonl", jsonl({"input": "a"}))
    response = api(people["admin"]).get(f"/api/projects/{project.pk}/imports/")
    assert [job["filename"] for job in response.json()] == ["q.jsonl"]


def test_redaction_at_import_follows_the_project_setting(api, people, project):
    project.redact_on_import = True
    project.save()
    job = import_file(api, people, project, "q.jsonl", jsonl({"input": "Mail me at li.lei@example.com"}))
    assert job["redact"] is True
    assert Item.objects.get(project=project).input == "Mail me at [EMAIL]"


def test_redaction_can_be_chosen_per_import(api, people, project):
    import_file(api, people, project, "q.jsonl", jsonl({"input": "Call 13800138000"}), redact=True)
    assert Item.objects.get(project=project).input == "Call [PHONE]"


def test_without_redaction_text_is_kept(api, people, project):
    import_file(api, people, project, "q.jsonl", jsonl({"input": "Call 13800138000"}))
    assert Item.objects.get(project=project).input == "Call 13800138000"


def test_compliance_phrases_flag_imported_items(api, people, project):
    project.compliance_phrases = ["guaranteed returns", "保证收益"]
    project.save()
    content = jsonl({"input": "Is this fund 保证收益?"}, {"input": "What fees apply?"})
    job = import_file(api, people, project, "q.jsonl", content)
    assert job["counts"]["flagged"] == 1
    flag = ComplianceFlag.objects.get()
    assert flag.item.input == "Is this fund 保证收益?" and flag.phrases == ["保证收益"]


def test_progress_is_visible_while_the_file_is_read(api, people, project, monkeypatch):
    # given progress written after every row
    monkeypatch.setattr(jobs, "PROGRESS_EVERY_S", 0)
    client = api(people["admin"])
    job_id = upload(client, project, "q.jsonl", jsonl(*({"input": f"q{i}"} for i in range(50)))).json()["id"]
    seen = []

    def watch(job):
        seen.append(client.get(f"/api/imports/{job_id}/").json())

    # when
    import_job_run(job_id=job_id, on_progress=watch)
    # then a reader saw it running with growing progress, and finally done
    running = [s for s in seen if s["status"] == "running"]
    assert running and 0 < running[0]["progress"]["bytes_read"] <= running[-1]["progress"]["bytes_read"]
    assert seen[-1]["status"] == "succeeded" and seen[-1]["progress"]["percent"] == 100
