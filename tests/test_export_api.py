"""Exports through the REST API and manage.py export_dataset: formats, redaction, validation, access."""

import csv
import io
import json

import datasets
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from annotation.models import AuditEvent, Draft, Item, ItemStatus, Revision
from annotation.services import items_create

from .factories import ItemFactory

pytestmark = pytest.mark.django_db


def approved(project, author, *, input, output, draft=None, context="", status=ItemStatus.APPROVED):
    """An item with a current revision, put straight into `status` (test setup; the workflow does this)."""
    item = ItemFactory(project=project, input=input, system=context)
    model_draft = Draft.objects.create(item=item, text=draft, confidence=0.5) if draft is not None else None
    revision = Revision.objects.create(
        item=item, author=author, stage="annotate", text=output, draft=model_draft
    )
    Item.objects.filter(pk=item.pk).update(current_revision=revision, status=status)
    return item


@pytest.fixture
def samples(project, people):
    author = people["annotator"]
    approved(project, author, input="Translate: 你好", output="Hello", draft="Hi", context="You translate.")
    approved(project, author, input="Capital of France?", output="Paris", draft="Paris")
    approved(project, author, input="Not yet", output="Pending answer", status=ItemStatus.SUBMITTED)


def export(api, people, project, **params):
    return api(people["admin"]).get(f"/api/projects/{project.pk}/export/", params)


def jsonl_body(response) -> list[dict]:
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_alpaca_export_has_the_approved_samples_only(api, people, project, samples):
    response = export(api, people, project, format="alpaca")
    assert response.status_code == 200
    assert jsonl_body(response) == [
        {"instruction": "Translate: 你好", "input": "", "output": "Hello", "system": "You translate.",
         "history": [], "tools": ""},
        {"instruction": "Capital of France?", "input": "", "output": "Paris", "system": "", "history": [],
         "tools": ""},
    ]  # fmt: skip


def test_export_is_an_attachment_with_its_dataset_info(api, people, project, samples):
    response = export(api, people, project, format="alpaca")
    assert response["Content-Disposition"] == f'attachment; filename="{project.slug}_alpaca.jsonl"'
    assert response["X-Record-Count"] == "2"
    info = json.loads(response["X-Dataset-Info"])
    (entry,) = info.values()
    assert entry["file_name"] == f"{project.slug}_alpaca.jsonl" and entry["formatting"] == "alpaca"
    assert "part=dataset_info" in response["Link"]


def test_dataset_info_part_answers_the_entry(api, people, project):
    response = export(api, people, project, format="sharegpt", part="dataset_info")
    (entry,) = response.json().values()
    assert entry["formatting"] == "sharegpt" and entry["tags"]["role_tag"] == "from"


def test_status_filter_exports_other_states(api, people, project, samples):
    response = export(api, people, project, format="alpaca", status="submitted")
    assert [r["output"] for r in jsonl_body(response)] == ["Pending answer"]


def test_sharegpt_export_alternates_roles(api, people, project, samples):
    first = jsonl_body(export(api, people, project, format="sharegpt"))[0]
    assert first["conversations"] == [
        {"from": "human", "value": "Translate: 你好"},
        {"from": "gpt", "value": "Hello"},
    ]
    assert first["system"] == "You translate."


def test_openai_export_has_messages(api, people, project, samples):
    first = jsonl_body(export(api, people, project, format="openai"))[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]


def test_preference_export_pairs_edited_answers_with_their_draft(api, people, project, samples):
    # the second sample's answer equals its draft: no pair
    assert jsonl_body(export(api, people, project, format="preference")) == [
        {
            "instruction": "Translate: 你好",
            "input": "",
            "chosen": "Hello",
            "rejected": "Hi",
            "system": "You translate.",
            "history": [],
            "tools": "",
        }
    ]


def test_csv_export_is_safe_against_formula_injection(api, people, project):
    approved(project, people["annotator"], input='=HYPERLINK("http://evil")', output="+1 is fine")
    body = b"".join(export(api, people, project, format="csv").streaming_content).decode("utf-8-sig")
    row = list(csv.DictReader(io.StringIO(body)))[0]
    assert row["input"].startswith("'=") and row["output"] == "'+1 is fine"


def test_parquet_export_reads_back(api, people, project, samples, tmp_path):
    response = export(api, people, project, format="parquet")
    # A path, not a BytesIO: pyarrow's reader threads can abort the interpreter at exit after reading
    # from a Python file object (apache/arrow#50482).
    (tmp_path / "p.parquet").write_bytes(b"".join(response.streaming_content))
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.column_names == ["instruction", "input", "output", "system", "history", "tools", "messages"]
    assert table.num_rows == 2


def test_metadata_is_added_on_request(api, people, project, samples):
    first = jsonl_body(export(api, people, project, format="alpaca", metadata="true"))[0]
    assert first["metadata"]["author"] == "annotator" and first["metadata"]["approved_at"] is None


def test_export_always_redacts_personal_data(api, people, project):
    approved(project, people["annotator"], input="My card 4111 1111 1111 1111, order 1234567890123",
             output="We wrote to li@example.com and 13800138000")  # fmt: skip
    record = jsonl_body(export(api, people, project, format="alpaca"))[0]
    assert record["instruction"] == "My card [CARD], order 1234567890123"
    assert record["output"] == "We wrote to [EMAIL] and [PHONE]"


def test_a_sample_with_an_empty_answer_is_refused_by_name(api, people, project):
    item = approved(project, people["annotator"], input="Q?", output="   ")
    response = export(api, people, project, format="alpaca")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_sample"
    assert f"sample {item.pk}" in response.json()["error"]["message"]


def test_unknown_format_is_a_400(api, people, project):
    response = export(api, people, project, format="xlsx")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("format:")


def test_export_is_audited(api, people, project, samples):
    export(api, people, project, format="alpaca")
    event = AuditEvent.objects.get(action="export")
    assert event.actor == people["admin"] and event.data == {
        "format": "alpaca",
        "status": "approved",
        "records": 2,
    }


@pytest.mark.parametrize("name, expected", [("outsider", 404), ("annotator", 403), ("domain_reviewer", 403),
                                            ("admin", 200), ("staff", 200)])  # fmt: skip
def test_only_project_admins_export(api, people, project, samples, name, expected):
    response = api(people[name]).get(f"/api/projects/{project.pk}/export/", {"format": "alpaca"})
    assert response.status_code == expected


def test_cli_writes_the_file_and_dataset_info_that_datasets_loads(project, samples, tmp_path):
    # when
    call_command(
        "export_dataset", project=project.slug, format="alpaca", out=str(tmp_path / "out"), verbosity=0
    )
    # then the directory is a LLaMA-Factory dataset_dir whose alpaca file has exactly the mapped columns
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    (entry,) = info.values()
    loaded = datasets.load_dataset(
        "json",
        data_files=str(tmp_path / "out" / entry["file_name"]),
        split="train",
        cache_dir=str(tmp_path / "c"),
    )
    assert (
        set(loaded.column_names)
        == set(entry["columns"].values())
        == {"instruction", "input", "output", "system", "history", "tools"}
    )
    assert loaded[0]["output"] == "Hello" and loaded.num_rows == 2


def test_cli_keeps_other_dataset_info_entries(project, samples, tmp_path):
    call_command("export_dataset", project=project.slug, format="alpaca", out=str(tmp_path), verbosity=0)
    call_command("export_dataset", project=project.slug, format="sharegpt", out=str(tmp_path), verbosity=0)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert {e["formatting"] for e in info.values()} == {"alpaca", "sharegpt"}


def test_cli_sharegpt_export_loads_with_datasets(project, samples, tmp_path):
    call_command("export_dataset", project=project.slug, format="sharegpt", out=str(tmp_path), verbosity=0)
    (entry,) = json.loads((tmp_path / "dataset_info.json").read_text()).values()
    loaded = datasets.load_dataset(
        "json", data_files=str(tmp_path / entry["file_name"]), split="train", cache_dir=str(tmp_path / "c")
    )
    assert set(loaded.column_names) == {"conversations", "system", "tools"}


@pytest.mark.parametrize("fmt", ["openai", "preference", "csv", "parquet"])
def test_cli_writes_every_format(project, samples, tmp_path, fmt):
    call_command("export_dataset", project=project.slug, format=fmt, out=str(tmp_path), verbosity=0)
    assert (
        (tmp_path / f"{project.slug}_{fmt}.{ {'csv': 'csv', 'parquet': 'parquet'}.get(fmt, 'jsonl') }")
        .stat()
        .st_size
    )


def test_cli_invalid_sample_leaves_no_file(project, people, tmp_path):
    approved(project, people["annotator"], input="Q?", output="")
    with pytest.raises(CommandError, match="output is empty"):
        call_command("export_dataset", project=project.slug, format="alpaca", out=str(tmp_path), verbosity=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_metadata_names_reviewers_per_tier_and_rubric_scores(people, project):
    import json

    from annotation.exporting.services import export_samples
    from review.rating.services import rating_submit, response_create
    from tests.factories import ItemFactory
    from tests.workflow_helpers import annotate, review

    # given an item rejected once, then approved by the expert and the domain reviewer, with one rating
    item = ItemFactory(project=project)
    annotate(project, people["annotator"], "First try")
    review(project, people["expert"], "expert", "reject", comment="Redo")
    annotate(project, people["annotator"], "Second try")
    review(project, people["expert"], "expert")
    review(project, people["domain_reviewer"], "domain")
    response = response_create(
        project=project,
        actor=people["admin"],
        input=item.input,
        text="Second try",
        origin="human",
        item=item,
        author=people["annotator"],
    )
    rating_submit(
        response_id=response.pk,
        rater=people["expert"],
        scores={"accuracy": 5, "politeness": 4, "usefulness": 3},
    )
    # when exported with metadata
    [sample] = list(export_samples(project=project, metadata=True))
    # then it names who approved at each tier since the rejection, and the rubric scores
    meta = sample["metadata"]
    assert meta["reviewers"] == {"expert": ["expert"], "domain": ["domain_reviewer"]}
    assert meta["scores"]["n"] == 1 and meta["scores"]["weighted_mean"] == pytest.approx(4.1)
    assert meta["scores"]["dimensions"] == {"accuracy": 5, "politeness": 4, "usefulness": 3}
    json.dumps(meta)  # serialisable as it is written


def conversation(project, author, *, messages, output, system="", metadata=None, tools=None, turn_edits=None,
                 status=ItemStatus.APPROVED, external_id=""):  # fmt: skip
    """An item made by items_create from a conversation row, with a current revision (and its edits of
    earlier assistant turns), put straight into `status`."""
    row = {"messages": messages, "system": system, "metadata": metadata or {}, "tools": tools or [],
           "external_id": external_id}  # fmt: skip
    items_create(project=project, actor=None, rows=[row])
    item = Item.objects.filter(project=project).order_by("-pk").first()
    revision = Revision.objects.create(
        item=item, author=author, stage="annotate", text=output, turn_edits=turn_edits or {}
    )
    Item.objects.filter(pk=item.pk).update(current_revision=revision, status=status)
    return item


THREE_TURNS = [
    {"role": "user", "content": "Wie heißt du?"},
    {"role": "assistant", "content": "Ich heiße Bot."},
    {"role": "user", "content": "Und auf Chinesisch？"},
]


def test_export_applies_the_current_revisions_edits_of_earlier_turns(api, people, project):
    # given a three-turn item whose revision rewrote the earlier assistant turn
    conversation(project, people["annotator"], messages=THREE_TURNS, output="我叫机器人。",
                 turn_edits={"1": "Mein Name ist Bot."})  # fmt: skip

    # when exported as OpenAI messages
    [record] = jsonl_body(export(api, people, project, format="openai"))

    # then the edited text stands in that turn, and the reply is the revision's
    assert [m["content"] for m in record["messages"]] == [
        "Wie heißt du?", "Mein Name ist Bot.", "Und auf Chinesisch？", "我叫机器人。"]  # fmt: skip


def test_metadata_filter_exports_only_the_matching_items(api, people, project):
    author = people["annotator"]
    conversation(project, author, messages=THREE_TURNS, output="A", metadata={"category": "it", "n": 7})
    conversation(project, author, messages=THREE_TURNS[:1], output="B", metadata={"category": "law"})

    response = export(api, people, project, format="sharegpt", **{"metadata.category": "it"})

    assert [r["conversations"][-1]["value"] for r in jsonl_body(response)] == ["A"]
    assert response["X-Record-Count"] == "1"
    # a number matches as the file held it (7) even though a query string spells it as text
    numbered = export(api, people, project, format="sharegpt", **{"metadata.n": "7"})
    assert [r["conversations"][-1]["value"] for r in jsonl_body(numbered)] == ["A"]
    assert AuditEvent.objects.filter(action="export").first().data["metadata"] == {"category": "it"}


def test_an_empty_metadata_filter_value_filters_nothing(api, people, project):
    conversation(project, people["annotator"], messages=THREE_TURNS, output="A", metadata={"category": "it"})
    conversation(project, people["annotator"], messages=THREE_TURNS[:1], output="B")

    response = export(api, people, project, format="openai", **{"metadata.category": ""})

    assert response.status_code == 200 and response["X-Record-Count"] == "2"


def test_an_unknown_query_parameter_is_still_refused(api, people, project):
    response = export(api, people, project, format="openai", metadatas="1")

    assert response.status_code == 400 and "metadatas" in json.dumps(response.json())


def test_jsonl_records_carry_the_items_metadata_only_when_asked(api, people, project):
    conversation(project, people["annotator"], messages=THREE_TURNS, output="A", metadata={"category": "it"},
                 external_id="q-7")  # fmt: skip

    [plain] = jsonl_body(export(api, people, project, format="openai"))
    [rich] = jsonl_body(export(api, people, project, format="openai", metadata="true"))

    assert "metadata" not in plain
    assert rich["metadata"]["item"] == {"category": "it"} and rich["metadata"]["external_id"] == "q-7"


def test_csv_export_has_a_column_per_metadata_key(api, people, project):
    conversation(project, people["annotator"], messages=THREE_TURNS, output="A", metadata={"category": "it"})
    conversation(
        project, people["annotator"], messages=THREE_TURNS[:1], output="B", metadata={"lang": "中文"}
    )

    body = b"".join(export(api, people, project, format="csv").streaming_content).decode("utf-8-sig")

    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["metadata.category"], r["metadata.lang"]) for r in rows] == [("it", ""), ("", "中文")]
    assert json.loads(rows[0]["messages"]) == THREE_TURNS


def test_export_redacts_every_turn_the_reply_tool_arguments_and_metadata(api, people, project):
    messages = [
        {"role": "user", "content": "Mail li@example.com please"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function", "function": {
            "name": "send", "arguments": json.dumps({"to": "li@example.com", "phone": 13800138000})}}]},
        {"role": "tool", "content": "sent to 13800138000"},
    ]  # fmt: skip
    conversation(project, people["annotator"], messages=messages, output="Done, li@example.com",
                 metadata={"owner": "wang@example.com"})  # fmt: skip

    [record] = jsonl_body(export(api, people, project, format="openai", metadata="true"))

    turns = record["messages"]
    assert turns[0]["content"] == "Mail [EMAIL] please" and turns[2]["content"] == "sent to [PHONE]"
    assert json.loads(turns[1]["tool_calls"][0]["function"]["arguments"]) == {
        "to": "[EMAIL]",
        "phone": "[PHONE]",
    }
    assert turns[3]["content"] == "Done, [EMAIL]"
    assert record["metadata"]["item"] == {"owner": "[EMAIL]"}


def test_cli_filters_by_metadata(project, people, tmp_path):
    conversation(project, people["annotator"], messages=THREE_TURNS, output="A", metadata={"category": "it"})
    conversation(
        project, people["annotator"], messages=THREE_TURNS[:1], output="B", metadata={"category": "x"}
    )

    call_command("export_dataset", "--metadata", "category=it", project=project.slug, format="sharegpt",
                 out=str(tmp_path), verbosity=0)  # fmt: skip

    [line] = (tmp_path / f"{project.slug}_sharegpt.jsonl").read_text().splitlines()
    assert json.loads(line)["conversations"][-1]["value"] == "A"


def test_cli_refuses_a_metadata_filter_without_a_value(project, tmp_path):
    with pytest.raises(CommandError, match="expected KEY=VALUE"):
        call_command("export_dataset", "--metadata", "category", project=project.slug, format="openai",
                     out=str(tmp_path), verbosity=0)  # fmt: skip


def test_export_page_offers_a_filter_per_metadata_key(client, people, project):
    conversation(project, people["annotator"], messages=THREE_TURNS, output="A", metadata={"category": "it"})
    client.force_login(people["admin"])

    page = client.get(f"/projects/{project.pk}/export/").content.decode()

    assert 'name="metadata.category"' in page
