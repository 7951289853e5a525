"""Backup and restore: the database and the files its rows point at, in one tar archive.

The archive (`manage.py backup OUT`) is an uncompressed tar: one file to copy off the machine, written
under a temporary name and renamed, so a half-written backup never carries the final name. It holds
- `manifest.json`: format version, database vendor, applied migrations per app, the roots the files came
  from, every file with its size and SHA-256, created_at, the app's version, the active training runs;
- `database.pgdump` (PostgreSQL, `pg_dump --format=custom`) or `database.sqlite3` (SQLite's online
  backup, `sqlite3.Connection.backup`);
- `files/<root>/<path>` for the roots the rows point into: `models` (HANDOVER_MODELS_DIR: base models
  and registered model directories), `training` (HANDOVER_TRAINING_DIR: run snapshots, checkpoints,
  trained models and adapters) and `media` (MEDIA_ROOT: uploaded import files). Caches, logs, the
  prometheus directory, Redis' data, the beat schedule and static files are not backed up; exports are
  streamed to the caller and never stored.

Consistency: the dump is one snapshot by itself (pg_dump runs in one repeatable-read transaction; the
SQLite backup copies one consistent state). The files are copied after it. A row that names a file is
written after the file (a run writes its model directory, then registers the version), and those files
are never rewritten in place, so every file a dumped row names is already there, whole, when the copy
runs; files created after the dump are extra and harmless. What does change in place is the directory of
an active training run (its checkpoints), so a backup refuses while a run is queued, running,
evaluating or in human evaluation, unless forced; a forced backup lists those runs in the manifest
(they resume from their last copied checkpoint, or the watchdog fails them).

`manage.py restore ARCHIVE` checks every file against the manifest before it writes anything, restores
the database into an empty one (or, forced, drops what is there first), copies the files to this
machine's roots, rewrites the absolute paths in rows that pointed under the old roots, and migrates
forward.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from .models import ACTIVE_RUN_STATES, ModelVersion, TrainingRun

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMPS = {"postgresql": "database.pgdump", "sqlite": "database.sqlite3"}

# Exit codes of the commands (CommandError's returncode); 1 is any other failure.
EXIT_REFUSED = 2  # a non-empty database, an active run, a missing or too-old pg_dump: nothing was done
EXIT_DAMAGED = 3  # the archive does not match its manifest: nothing was written


class BackupError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def file_roots() -> dict[str, Path]:
    """The directories whose files the database rows point at, by their name in the archive."""
    return {
        "models": Path(settings.HANDOVER_MODELS_DIR),
        "training": Path(settings.HANDOVER_TRAINING_DIR),
        "media": Path(settings.MEDIA_ROOT),
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def app_version() -> str | None:
    try:
        return metadata.version("handover")
    except metadata.PackageNotFoundError:
        return None


def migration_state() -> dict[str, list[str]]:
    state: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        state.setdefault(app, []).append(name)
    return state


# --- PostgreSQL tools ------------------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """The newest `name` (pg_dump, pg_restore) under /usr/lib/postgresql/*/bin, else the one on PATH."""

    def major(path: Path) -> int:
        return int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0

    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=major)
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise BackupError(
        f"{name} was not found (looked in /usr/lib/postgresql/*/bin and on PATH); install the PostgreSQL "
        "client tools of the server's major version or newer",
        EXIT_REFUSED,
    )


def tool_major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise BackupError(f"could not read the version of {binary} from {out!r}")
    return int(match.group(1))


def pg_env_args() -> tuple[dict[str, str], list[str]]:
    """The environment and connection arguments for pg_dump / pg_restore from settings.DATABASES."""
    db = connection.settings_dict
    env = os.environ.copy()
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    args = []
    if db.get("HOST"):
        args += ["--host", str(db["HOST"])]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    sslmode = (db.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = str(sslmode)
    return env, [*args, "--no-password", "--dbname", str(db["NAME"])]


def pg_check_tool(name: str) -> str:
    binary = pg_tool(name)
    connection.ensure_connection()
    server = connection.pg_version // 10000
    client = tool_major(binary)
    if client < server:
        raise BackupError(
            f"{binary} is version {client}, older than the server's {server}; install the PostgreSQL "
            f"{server} client tools (postgresql-client-{server}) or newer",
            EXIT_REFUSED,
        )
    return binary


def run_tool(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr.strip()}")


# --- backup ----------------------------------------------------------------------------------------------


def database_dump(target: Path) -> None:
    if connection.vendor == "postgresql":
        binary = pg_check_tool("pg_dump")
        env, args = pg_env_args()
        run_tool(
            [binary, "--format=custom", "--no-owner", "--no-privileges", "--file", str(target), *args], env
        )
    elif connection.vendor == "sqlite":
        _sqlite_copy(connection.settings_dict["NAME"], target)
    else:
        raise BackupError(f"backup supports PostgreSQL and SQLite, not {connection.vendor}", EXIT_REFUSED)


def backup_create(out: Path, *, force: bool = False, say: Callable[[str], None] = lambda _: None) -> dict:
    """Write the archive to `out` (a .tar file); return its manifest."""
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} already exists; name a new file", EXIT_REFUSED)
    active = list(TrainingRun.objects.filter(status__in=ACTIVE_RUN_STATES).values_list("pk", flat=True))
    if active and not force:
        raise BackupError(
            f"training runs {', '.join(map(str, active))} are active and write their checkpoints in place; "
            "wait for them to end, or pass --force to back up anyway (the manifest lists them)",
            EXIT_REFUSED,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as work:
        dump = Path(work) / DUMPS.get(connection.vendor, "database")
        say(f"Dumping the {connection.vendor} database")
        created_at = datetime.now(UTC).isoformat()
        database_dump(dump)
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_at": created_at,
            "app_version": app_version(),
            "database_vendor": connection.vendor,
            "database_dump": dump.name,
            "migrations": migration_state(),
            "roots": {name: str(path) for name, path in file_roots().items()},
            "active_training_runs": active,
            "files": [],
        }
        partial = out.with_name(f".{out.name}.partial")
        with tarfile.open(partial, "w") as archive:
            archive.add(dump, arcname=dump.name)
            for name, root in file_roots().items():
                if not root.is_dir():
                    continue
                for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
                    relative = path.relative_to(root).as_posix()
                    arcname = f"files/{name}/{relative}"
                    # Hash the bytes the archive receives, as it reads them: one read of each file.
                    with open(path, "rb") as stream:
                        info = archive.gettarinfo(arcname=arcname, fileobj=stream)
                        reader = _HashingReader(stream)
                        archive.addfile(info, reader)
                    manifest["files"].append(
                        {"path": arcname, "size": info.size, "sha256": reader.digest.hexdigest()}
                    )
            encoded = json.dumps(manifest, indent=2).encode("utf-8")
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(encoded)
            info.mtime = int(datetime.now(UTC).timestamp())
            archive.addfile(info, io.BytesIO(encoded))
        os.replace(partial, out)
    say(f"Wrote {out}: the database and {len(manifest['files'])} files")
    return manifest


class _HashingReader:
    def __init__(self, stream):
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.digest.update(chunk)
        return chunk


# --- restore ---------------------------------------------------------------------------------------------


def database_tables_with_rows() -> tuple[list[str], list[str]]:
    """All tables of the database, and those that hold rows."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        full = []
        for table in tables:
            cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")
            if cursor.fetchone():
                full.append(table)
    return tables, full


def database_drop_all(tables: list[str]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)} CASCADE")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)}")


def database_load(dump: Path) -> None:
    if connection.vendor == "postgresql":
        binary = pg_check_tool("pg_restore")
        env, args = pg_env_args()
        connection.close()
        run_tool([binary, "--no-owner", "--no-privileges", "--exit-on-error", *args, str(dump)], env)
    else:
        connection.close()
        _sqlite_copy(dump, connection.settings_dict["NAME"])


def _sqlite_copy(source_path, target_path) -> None:
    """SQLite's online backup of one database file into another (a live source is read consistently)."""
    with (
        closing(sqlite3.connect(str(source_path), timeout=30)) as source,
        closing(sqlite3.connect(str(target_path), timeout=30)) as target,
    ):
        source.backup(target)


def archive_check(archive: tarfile.TarFile, work: Path) -> dict:
    """Extract into `work` and check every file against the manifest; the manifest."""
    try:
        manifest = json.load(archive.extractfile(MANIFEST))
    except KeyError:
        raise BackupError(f"{archive.name} has no {MANIFEST}: not a Handover backup", EXIT_DAMAGED) from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"the backup's format version is {manifest.get('format_version')}, this Handover reads "
            f"{FORMAT_VERSION}",
            EXIT_REFUSED,
        )
    archive.extractall(work, filter="data")
    listed = {entry["path"] for entry in manifest["files"]}
    present = (
        {p.relative_to(work).as_posix() for p in (work / "files").rglob("*") if p.is_file()}
        if (work / "files").is_dir()
        else set()
    )
    for extra in sorted(present - listed):
        raise BackupError(f"{extra} is in the archive but not in its manifest", EXIT_DAMAGED)
    for entry in manifest["files"]:
        parts = entry["path"].split("/")
        if len(parts) < 3 or parts[0] != "files" or parts[1] not in file_roots() or ".." in parts:
            raise BackupError(f"{entry['path']} in the manifest is not under a known root", EXIT_DAMAGED)
        path = work / entry["path"]
        if not path.is_file():
            raise BackupError(
                f"{entry['path']} is in the manifest but missing from the archive", EXIT_DAMAGED
            )
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise BackupError(f"{entry['path']} does not match its SHA-256 in the manifest", EXIT_DAMAGED)
    if not (work / manifest["database_dump"]).is_file():
        raise BackupError(f"{manifest['database_dump']} is missing from the archive", EXIT_DAMAGED)
    return manifest


def paths_rewrite(old_roots: dict[str, str]) -> int:
    """Rows hold absolute paths under the roots they were written in; point them at this machine's."""
    moves = [
        (old.rstrip("/") + "/", str(file_roots()[name]).rstrip("/") + "/")
        for name, old in old_roots.items()
        if name in file_roots() and old.rstrip("/") != str(file_roots()[name]).rstrip("/")
    ]

    def moved(value: str) -> str:
        for old, new in moves:
            if value.startswith(old):
                return new + value[len(old) :]
        return value

    changed = 0
    if not moves:
        return 0
    for model, fields in (
        (ModelVersion, ("base_model", "adapter_path")),
        (TrainingRun, ("base_model", "output_dir", "trained_model_dir")),
    ):
        for row in model.objects.only("pk", *fields).iterator():
            updates = {f: moved(getattr(row, f)) for f in fields if moved(getattr(row, f)) != getattr(row, f)}
            if updates:
                model.objects.filter(pk=row.pk).update(**updates)
                changed += 1
    return changed


def backup_restore(path: Path, *, force: bool = False, say: Callable[[str], None] = lambda _: None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} does not exist", EXIT_REFUSED)
    with tempfile.TemporaryDirectory(prefix="handover-restore-") as work_dir:
        work = Path(work_dir)
        try:
            with tarfile.open(path, "r") as archive:
                manifest = archive_check(archive, work)
        except tarfile.TarError as error:
            raise BackupError(f"{path} is not a readable tar archive: {error}", EXIT_DAMAGED) from None
        if manifest["database_vendor"] != connection.vendor:
            raise BackupError(
                f"the backup is of a {manifest['database_vendor']} database, this one is {connection.vendor}",
                EXIT_REFUSED,
            )
        tables, full = database_tables_with_rows()
        if full and not force:
            raise BackupError(
                f"the database is not empty ({len(full)} tables hold rows, e.g. {', '.join(full[:3])}); "
                "restore into an empty database, or pass --force to drop everything in it first",
                EXIT_REFUSED,
            )
        if tables:
            say(f"Dropping the {len(tables)} tables already in the database")
            database_drop_all(tables)
        say("Restoring the database")
        database_load(work / manifest["database_dump"])
        roots = file_roots()
        for entry in manifest["files"]:
            _, root_name, relative = entry["path"].split("/", 2)
            target = roots[root_name] / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / entry["path"], target)
        say(f"Restored {len(manifest['files'])} files")
    say("Migrating")
    call_command("migrate", interactive=False, verbosity=0)
    rewritten = paths_rewrite(manifest.get("roots", {}))
    if rewritten:
        say(f"Pointed {rewritten} rows at this machine's directories")
    return manifest
