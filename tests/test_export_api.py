"""Exports through the REST API and manage.py export_dataset: formats, redaction, validation, access."""

import csv
import io
import json

import datasets
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from annotation.models import AuditEvent, Draft, Item, ItemStatus, Revision

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
        {"instruction": "Translate: 你好", "input": "", "output": "Hello", "system": "You translate."},
        {"instruction": "Capital of France?", "input": "", "output": "Paris", "system": ""},
    ]


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
        }
    ]


def test_csv_export_is_safe_against_formula_injection(api, people, project):
    approved(project, people["annotator"], input='=HYPERLINK("http://evil")', output="+1 is fine")
    body = b"".join(export(api, people, project, format="csv").streaming_content).decode("utf-8-sig")
    row = list(csv.DictReader(io.StringIO(body)))[0]
    assert row["input"].startswith("'=") and row["output"] == "'+1 is fine"


def test_parquet_export_reads_back(api, people, project, samples):
    response = export(api, people, project, format="parquet")
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.column_names == ["instruction", "input", "output", "system"] and table.num_rows == 2


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
        == {"instruction", "input", "output", "system"}
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
    assert set(loaded.column_names) == {"conversations", "system"}


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

    from annotation.exporting import export_samples
    from review.rating import rating_submit, response_create
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
