"""manage.py import_items: the same import service, from a local file, with errors on stderr."""

import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import ImportJob, Item

pytestmark = pytest.mark.django_db


def write(tmp_path, name, *records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_cli_imports_a_file(project, tmp_path, capsys):
    path = write(tmp_path, "q.jsonl", {"input": "one"}, {"input": "two"})
    call_command("import_items", str(path), project=project.slug, verbosity=0)
    assert Item.objects.filter(project=project).count() == 2
    assert "2 imported" in capsys.readouterr().out


def test_cli_reimport_skips_what_is_there(project, tmp_path, capsys):
    path = write(tmp_path, "q.jsonl", {"input": "one"})
    call_command("import_items", str(path), project=project.slug, verbosity=0)
    call_command("import_items", str(path), project=project.slug, verbosity=0)
    assert Item.objects.count() == 1
    assert "0 imported; 1 already present" in capsys.readouterr().out


def test_cli_with_an_invalid_row_imports_nothing_and_names_the_line(project, tmp_path, capsys):
    path = write(tmp_path, "q.jsonl", {"input": "one"}, {"input": ""})
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_items", str(path), project=project.slug, verbosity=0)
    assert "q.jsonl: line 2, field 'input': input field is empty" in capsys.readouterr().err
    assert not Item.objects.exists()


def test_cli_skip_invalid_imports_the_rest(project, tmp_path):
    path = write(tmp_path, "q.jsonl", {"input": "one"}, {"input": ""})
    call_command("import_items", str(path), project=project.slug, skip_invalid=True, verbosity=0)
    assert list(Item.objects.values_list("input", flat=True)) == ["one"]


def test_cli_mapping_and_format(project, tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("question,id\nWhat?,k1\n")
    mapping = json.dumps({"input": "question", "external_id": "id"})
    call_command("import_items", str(path), project=project.slug, format="csv", mapping=mapping, verbosity=0)
    assert list(Item.objects.values_list("input", "external_id")) == [("What?", "k1")]


def test_cli_records_a_job(project, tmp_path):
    path = write(tmp_path, "q.jsonl", {"input": "one"})
    call_command("import_items", str(path), project=project.slug, verbosity=0)
    job = ImportJob.objects.get()
    assert (job.status, job.rows_imported, job.created_by, job.bytes_read) == (
        "succeeded",
        1,
        None,
        path.stat().st_size,
    )


def test_cli_unknown_project_is_an_error(db, tmp_path):
    path = write(tmp_path, "q.jsonl", {"input": "one"})
    with pytest.raises(CommandError, match="no project"):
        call_command("import_items", str(path), project="nope", verbosity=0)


def test_cli_imports_conversations_and_prints_where_each_key_went(project, tmp_path, capsys):
    record = {"id": 5, "category": "it", "conversations": [
        {"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"},
        {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]}  # fmt: skip
    path = write(tmp_path, "chat.jsonl", record)

    call_command("import_items", str(path), project=project.slug, verbosity=0)

    item = Item.objects.get()
    assert (len(item.messages), item.reference_output, item.metadata) == (3, "a2", {"category": "it"})
    out = capsys.readouterr().out
    assert "read as sharegpt" in out and "  category -> metadata.category (1 rows)" in out


def test_cli_names_the_turn_of_a_conversation_that_cannot_be_read(project, tmp_path, capsys):
    record = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}
    path = write(tmp_path, "chat.jsonl", record)

    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_items", str(path), project=project.slug, verbosity=0)

    assert (
        "chat.jsonl: line 1, field 'conversations', turn 2: the assistant turn is empty"
        in capsys.readouterr().err
    )
