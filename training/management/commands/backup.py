"""`manage.py backup OUT`: the database and the files its rows point at, in one tar (training/backup.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Write the database and the model, training and upload files to one .tar archive."

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="the archive to write (a new file, e.g. handover.tar)")
        parser.add_argument(
            "--force", action="store_true", help="back up even while training runs are active"
        )

    def handle(self, *args, out: Path, force: bool, **options):
        try:
            backup_create(out, force=force, say=self.stdout.write)
        except BackupError as error:
            raise CommandError(str(error), returncode=error.code) from None
