"""Write a project's reviewed samples and their dataset_info.json entry into a directory."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.dataio.exporters import EXPORT_FORMATS
from annotation.exporting.services import export_to_dir
from annotation.models import ItemStatus, Project
from core.errors import ApplicationError


def metadata_filters(given: list[str]) -> dict[str, str]:
    filters = {}
    for text in given:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise CommandError(f"--metadata {text!r}: expected KEY=VALUE, e.g. --metadata category=it")
        filters[key] = value
    return filters


class Command(BaseCommand):
    help = (
        "Export approved samples (or --status) as LLaMA-Factory alpaca/sharegpt/preference JSONL, OpenAI "
        "messages JSONL, CSV or Parquet into --out, adding the entry to --out/dataset_info.json."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
        parser.add_argument("--out", required=True, type=Path, help="directory (created when missing)")
        parser.add_argument("--status", default=ItemStatus.APPROVED, choices=ItemStatus.values)
        parser.add_argument(
            "--metadata", action="append", default=[], metavar="KEY=VALUE",
            help="only items whose metadata KEY has VALUE (repeat to combine)",
        )  # fmt: skip
        parser.add_argument(
            "--with-metadata", action="store_true",
            help="add ids, author, timestamps and the item's metadata to JSONL records",
        )  # fmt: skip

    def handle(self, *args, **options):
        try:
            project = Project.objects.get(slug=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {options['project']!r}") from None
        filters = metadata_filters(options["metadata"])
        try:
            result = export_to_dir(
                project=project, fmt=options["format"], out=Path(options["out"]), status=options["status"],
                metadata=options["with_metadata"], filters=filters,
            )  # fmt: skip
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"{result.records:,} records -> {result.path}"))
        if result.dataset_info_path:
            self.stdout.write(f"entry added to {result.dataset_info_path}")
