"""Import a local file of conversations into a project, in this process, with a progress bar."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.dataio.parsers import FIELDS, FORMATS
from annotation.importing import import_job_create, import_job_run
from annotation.models import ImportStatus, Project
from core.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import items from a CSV, JSON, JSONL, Label Studio, alpaca, sharegpt or OpenAI chat file, or from a "
        "raw chat log (--format chat_log: one message per line, split into conversations); every key that "
        "is not part of the conversation becomes the item's metadata. Nothing is imported when any row is "
        "invalid, unless --skip-invalid; rows already in the project are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", choices=FORMATS, default="", help="default: detect")
        parser.add_argument(
            "--mapping",
            default=None,
            help=f"JSON: field -> source key, or null for none; fields: {', '.join(FIELDS)}",
        )
        parser.add_argument("--skip-invalid", action="store_true", help="import valid rows, list the rest")
        parser.add_argument(
            "--session-gap-minutes",
            type=float,
            default=None,
            help="chat_log: a longer silence inside a session starts a new conversation (default 30)",
        )
        redact = parser.add_mutually_exclusive_group()
        redact.add_argument("--redact", dest="redact", action="store_true", default=None)
        redact.add_argument("--no-redact", dest="redact", action="store_false")

    def handle(self, *args, **options):
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            project = Project.objects.get(slug=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {options['project']!r}") from None
        try:
            mapping = json.loads(options["mapping"]) if options["mapping"] else None
        except json.JSONDecodeError as exc:
            raise CommandError(f"--mapping is not JSON: {exc}") from None
        gap = options["session_gap_minutes"]
        format_options = {} if gap is None else {"session_gap_minutes": gap}
        try:
            job = import_job_create(
                project=project,
                actor=None,
                filename=path.name,
                size=path.stat().st_size,
                fmt=options["format"],
                mapping=mapping,
                skip_invalid=options["skip_invalid"],
                redact=options["redact"],
                options=format_options,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        verbose = options["verbosity"] > 0
        with (
            path.open("rb") as stream,
            tqdm(
                total=job.bytes_total, unit="B", unit_scale=True, desc=path.name, disable=not verbose
            ) as bar,
        ):

            def progress(current):
                bar.update(current.bytes_read - bar.n)

            job = import_job_run(job_id=job.pk, stream=stream, on_progress=progress)
        for error in job.errors:
            where = f"line {error['line']}" + (f", field '{error['field']}'" if error["field"] else "")
            where += f", turn {error['turn']}" if error.get("turn") else ""
            self.stderr.write(f"{path.name}: {where}: {error['reason']}")
        if job.errors_total > len(job.errors):
            self.stderr.write(f"... and {job.errors_total - len(job.errors):,} more errors")
        if job.status != ImportStatus.SUCCEEDED:
            raise CommandError(job.message)
        self.stdout.write(self.style.SUCCESS(f"import {job.pk}: {job.message}"))
        if job.detected_format:
            self.stdout.write(f"read as {job.detected_format}; keys:")
        for key, entry in job.key_report.items():
            self.stdout.write(f"  {key} -> {entry['to']} ({entry['rows']:,} rows)")
