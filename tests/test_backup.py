"""`manage.py backup` / `restore`: a round trip on PostgreSQL into a new database and a fresh var dir, on
SQLite in the embedded mode's environment; a tampered file and a non-empty database are refused."""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from annotation.models import Revision, Stage
from tests.factories import ItemFactory, ProjectFactory, UserFactory
from training import backup
from training.models import DatasetSnapshot, ModelVersion, RunStatus, TrainingRun

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def var_roots(tmp_path):
    """The backed-up roots, in a var dir of the test's own, with a model version's adapter in it."""
    var = tmp_path / "var"
    roots = {"models": var / "models", "training": var / "training", "media": var / "media"}
    adapter = roots["training"] / "run-1" / "model"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(4096))
    (roots["models"] / "tiny").mkdir(parents=True)
    (roots["models"] / "tiny" / "config.json").write_text('{"vocab_size": 10}')
    (roots["media"] / "imports" / "2026" / "12").mkdir(parents=True)
    (roots["media"] / "imports" / "2026" / "12" / "items.jsonl").write_text('{"input": "hi"}\n')
    with override_settings(
        HANDOVER_MODELS_DIR=roots["models"],
        HANDOVER_TRAINING_DIR=roots["training"],
        MEDIA_ROOT=roots["media"],
    ):
        yield roots


def seed(roots) -> ModelVersion:
    author = UserFactory(username="writer")
    project = ProjectFactory(name="Backed up")
    for n in range(5):
        item = ItemFactory(project=project, input=f"Question {n} ✓")
        Revision.objects.create(item=item, author=author, stage=Stage.ANNOTATE, text=f"Answer {n}")
    return ModelVersion.objects.create(
        project=project,
        name="v1",
        base_model=str(roots["models"] / "tiny"),
        adapter_path=str(roots["training"] / "run-1" / "model"),
        generation={"max_new_tokens": 8},
    )


# --- PostgreSQL ------------------------------------------------------------------------------------------


@pytest.fixture
def new_database():
    """A new, empty database on the test server; its URL. Dropped afterwards."""
    db = connection.settings_dict
    name = f"restore_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restore_env(url: str, var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOVER_") or k == "HANDOVER_ENV"}
    return {**env, "DATABASE_URL": url, "HANDOVER_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1"}


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(query).fetchall()


TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"


@pytest.mark.django_db(transaction=True)
def test_a_postgres_backup_restores_into_a_new_database_with_the_same_rows_and_files(
    var_roots, new_database, tmp_path
):
    version = seed(var_roots)
    out = tmp_path / "handover.tar"
    call_command("backup", str(out), stdout=io.StringIO())

    with tarfile.open(out) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("manifest.json"))
    assert "database.pgdump" in names
    assert manifest["format_version"] == 1 and manifest["database_vendor"] == "postgresql"
    assert "0001_initial" in manifest["migrations"]["annotation"]
    assert {f["path"] for f in manifest["files"]} == {
        "files/training/run-1/model/adapter_config.json",
        "files/training/run-1/model/adapter_model.safetensors",
        "files/models/tiny/config.json",
        "files/media/imports/2026/12/items.jsonl",
    }
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"])

    fresh = tmp_path / "fresh-var"
    done = manage("restore", str(out), env=restore_env(new_database, fresh))
    assert done.returncode == 0, done.stderr

    # the same tables with the same counts; the items and revisions row for row
    source = connection.settings_dict
    source_url = f"postgres://{source['USER']}@{source['HOST']}:{source['PORT']}/{source['NAME']}"
    tables = [t for (t,) in rows(source_url, TABLES)]
    assert tables == [t for (t,) in rows(new_database, TABLES)]
    for table in tables:
        count = f'SELECT count(*) FROM "{table}"'
        assert rows(source_url, count) == rows(new_database, count), table
    for table in ("annotation_item", "annotation_revision", "auth_user"):
        everything = f'SELECT * FROM "{table}" ORDER BY id'
        assert rows(source_url, everything) == rows(new_database, everything), table
    # the files, byte for byte, under the fresh var dir; the version's paths point there
    for name, root in var_roots.items():
        assert tree_hashes(root) == tree_hashes(fresh / name), name
    [(base_model, adapter_path)] = rows(
        new_database, f"SELECT base_model, adapter_path FROM training_modelversion WHERE id = {version.pk}"
    )
    assert adapter_path == str(fresh / "training" / "run-1" / "model")
    assert base_model == str(fresh / "models" / "tiny")


def tampered_copy(archive: Path, target: Path, member: str) -> None:
    with tarfile.open(archive) as source, tarfile.open(target, "w") as out:
        for info in source.getmembers():
            data = source.extractfile(info).read()
            if info.name == member:
                data = data[:-1] + bytes([data[-1] ^ 1])
            out.addfile(info, io.BytesIO(data))


@pytest.mark.django_db(transaction=True)
def test_a_tampered_file_fails_the_restore_naming_it_and_writes_nothing(var_roots, new_database, tmp_path):
    seed(var_roots)
    out = tmp_path / "handover.tar"
    call_command("backup", str(out), stdout=io.StringIO())
    bad = tmp_path / "tampered.tar"
    tampered_copy(out, bad, "files/training/run-1/model/adapter_model.safetensors")

    fresh = tmp_path / "fresh-var"
    done = manage("restore", str(bad), env=restore_env(new_database, fresh))
    assert done.returncode == backup.EXIT_DAMAGED, done.stderr
    assert "files/training/run-1/model/adapter_model.safetensors does not match its SHA-256" in done.stderr
    assert rows(new_database, TABLES) == []
    assert not (fresh / "training").exists()


@pytest.mark.django_db(transaction=True)
def test_restore_into_a_database_with_rows_is_refused(var_roots, tmp_path):
    seed(var_roots)
    out = tmp_path / "handover.tar"
    call_command("backup", str(out), stdout=io.StringIO())
    with pytest.raises(CommandError, match="the database is not empty") as refused:
        call_command("restore", str(out), stdout=io.StringIO())
    assert refused.value.returncode == backup.EXIT_REFUSED
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_a_pg_dump_older_than_the_server_is_refused_naming_both_versions(monkeypatch, tmp_path):
    monkeypatch.setattr(backup, "tool_major", lambda binary: 9)
    with pytest.raises(CommandError, match=r"pg_dump is version 9, older than the server's \d+") as refused:
        call_command("backup", str(tmp_path / "b.tar"), stdout=io.StringIO())
    assert refused.value.returncode == backup.EXIT_REFUSED
    assert not (tmp_path / "b.tar").exists()


def test_a_backup_refuses_to_overwrite_an_existing_file(tmp_path):
    (tmp_path / "b.tar").write_text("keep")
    with pytest.raises(CommandError, match="already exists"):
        call_command("backup", str(tmp_path / "b.tar"))
    assert (tmp_path / "b.tar").read_text() == "keep"


# --- SQLite, the embedded mode ---------------------------------------------------------------------------


def embedded_env(var: Path) -> dict[str, str]:
    """What `make run` runs with: no DATABASE_URL, REDIS_URL or HANDOVER_ENV; one var dir for everything."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "HANDOVER_ENV"} and not k.startswith("HANDOVER_")
    }
    return {**env, "HANDOVER_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1"}


SEED = """
from django.conf import settings
from annotation.models import Revision, Stage
from tests.factories import ItemFactory, ProjectFactory, UserFactory
from training.models import DatasetSnapshot, ModelVersion, RunStatus, TrainingRun
author = UserFactory(username="writer")
project = ProjectFactory(name="Embedded")
for n in range(4):
    item = ItemFactory(project=project, input=f"Embedded {n}")
    Revision.objects.create(item=item, author=author, stage=Stage.ANNOTATE, text=f"Reply {n}")
adapter = settings.HANDOVER_TRAINING_DIR / "run-7" / "model"
adapter.mkdir(parents=True)
(adapter / "adapter_model.safetensors").write_bytes(b"weights" * 100)
ModelVersion.objects.create(project=project, name="v1", base_model="tiny", adapter_path=str(adapter))
"""


def sqlite_rows(path: Path, query: str) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_an_embedded_sqlite_backup_restores_on_a_fresh_var_dir(tmp_path):
    old, fresh = tmp_path / "var", tmp_path / "fresh"
    for args in (("migrate", "-v0"), ("shell", "-c", SEED)):
        done = manage(*args, env=embedded_env(old))
        assert done.returncode == 0, done.stderr
    out = tmp_path / "handover.tar"
    done = manage("backup", str(out), env=embedded_env(old))
    assert done.returncode == 0, done.stderr
    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        assert "database.sqlite3" in archive.getnames()
    assert manifest["database_vendor"] == "sqlite"

    done = manage("restore", str(out), env=embedded_env(fresh))
    assert done.returncode == 0, done.stderr
    for query in (
        "SELECT * FROM annotation_item ORDER BY id",
        "SELECT * FROM annotation_revision ORDER BY id",
        "SELECT count(*) FROM django_migrations",
    ):
        assert sqlite_rows(old / "handover.sqlite3", query) == sqlite_rows(fresh / "handover.sqlite3", query)
    assert tree_hashes(old / "training") == tree_hashes(fresh / "training")
    assert sqlite_rows(fresh / "handover.sqlite3", "SELECT adapter_path FROM training_modelversion") == [
        (str(fresh / "training" / "run-7" / "model"),)
    ]

    # a second restore into the now full database is refused, and --force replaces it
    again = manage("restore", str(out), env=embedded_env(fresh))
    assert again.returncode == backup.EXIT_REFUSED and "the database is not empty" in again.stderr
    forced = manage("restore", "--force", str(out), env=embedded_env(fresh))
    assert forced.returncode == 0, forced.stderr
    assert sqlite_rows(fresh / "handover.sqlite3", "SELECT count(*) FROM annotation_item") == [(4,)]


def test_a_backup_from_an_older_migration_state_restores_and_is_migrated_forward(tmp_path):
    old, fresh = tmp_path / "var", tmp_path / "fresh"
    for args in (("migrate", "-v0"), ("migrate", "training", "0011_askanswer_response", "-v0")):
        done = manage(*args, env=embedded_env(old))
        assert done.returncode == 0, done.stderr
    out = tmp_path / "handover.tar"
    assert manage("backup", str(out), env=embedded_env(old)).returncode == 0
    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    assert "0012_model_judge" not in manifest["migrations"]["training"]

    done = manage("restore", str(out), env=embedded_env(fresh))
    assert done.returncode == 0, done.stderr
    applied = sqlite_rows(
        fresh / "handover.sqlite3", "SELECT name FROM django_migrations WHERE app = 'training'"
    )
    assert ("0012_model_judge",) in applied
    assert sqlite_rows(fresh / "handover.sqlite3", "SELECT count(*) FROM training_modeljudge") == [(0,)]


@pytest.mark.django_db
def test_a_backup_refuses_while_a_run_trains_and_forced_lists_it(var_roots, tmp_path):
    version = seed(var_roots)
    snapshot = DatasetSnapshot.objects.create(
        project=version.project, content_hash="0" * 64, eval_fraction=0.1
    )
    run = TrainingRun.objects.create(
        project=version.project, snapshot=snapshot, base_model="tiny", status=RunStatus.RUNNING
    )
    with pytest.raises(CommandError, match=f"training runs {run.pk} are active") as refused:
        call_command("backup", str(tmp_path / "b.tar"), stdout=io.StringIO())
    assert refused.value.returncode == backup.EXIT_REFUSED
    assert not (tmp_path / "b.tar").exists()

    call_command("backup", str(tmp_path / "b.tar"), "--force", stdout=io.StringIO())
    with tarfile.open(tmp_path / "b.tar") as archive:
        assert json.load(archive.extractfile("manifest.json"))["active_training_runs"] == [run.pk]
