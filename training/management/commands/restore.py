"""`manage.py restore ARCHIVE`: a `backup` archive into an empty database and this machine's var dir."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = "Restore a backup archive into an empty database, copy its files back and migrate forward."

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="an archive written by `manage.py backup`")
        parser.add_argument(
            "--force", action="store_true", help="drop every table of a database that is not empty first"
        )

    def handle(self, *args, archive: Path, force: bool, **options):
        try:
            backup_restore(archive, force=force, say=self.stdout.write)
        except BackupError as error:
            raise CommandError(str(error), returncode=error.code) from None
