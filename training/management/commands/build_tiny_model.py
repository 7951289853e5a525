"""Build the tiny offline chat model (random Llama + a BPE tokenizer trained on project or demo text)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.base_model import tiny_default_path
from training.engine.model_files import build_once


def project_texts(slug: str) -> list[str]:
    from annotation.models import Item, Project, Revision

    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"No project with slug '{slug}'.")
    inputs = Item.objects.filter(project=project).values_list("input", flat=True)
    answers = Revision.objects.filter(item__project=project).values_list("text", flat=True)
    return list(inputs) + list(answers)


class Command(BaseCommand):
    help = "Build a tiny Llama-architecture chat model offline, saved as an ordinary Hugging Face directory."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, help="directory to write (default: HANDOVER_MODELS_DIR/tiny)")
        parser.add_argument("--project", help="train the tokenizer on this project's items and answers too")
        parser.add_argument("--vocab-size", type=int, default=4000)
        parser.add_argument("--hidden-size", type=int, default=256)
        parser.add_argument("--layers", type=int, default=2)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--force", action="store_true", help="overwrite a model already there")

    def handle(self, *args, out: Path | None, project: str | None, force: bool, **options):
        from training.engine.tiny_model import build_tiny_model, default_corpus

        out = out or tiny_default_path()
        texts = default_corpus() + (project_texts(project) if project else [])

        def build(directory: Path) -> None:
            build_tiny_model(
                directory,
                texts,
                vocab_size=options["vocab_size"],
                hidden_size=options["hidden_size"],
                num_layers=options["layers"],
                seed=options["seed"],
            )

        if force:
            build(out)
        elif not build_once(out, build):  # atomic, and safe beside a worker building the default
            self.stdout.write(f"A model is already in {out}; --force rebuilds it.")
            return
        self.stdout.write(self.style.SUCCESS(f"Tiny model written to {out}"))
