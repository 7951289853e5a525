"""Launch a training run for a project and run it in this process, with a progress bar."""

import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import Project
from core.errors import ApplicationError
from training.engine.config import METHODS
from training.runs import execute, launch


class Command(BaseCommand):
    help = "Snapshot the approved samples, fine-tune, evaluate and open the human round (or --queue it)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="the project's slug")
        parser.add_argument("--method", choices=METHODS, default="lora")
        parser.add_argument("--hyperparameters", default="{}", help="JSON, e.g. '{\"max_steps\": 200}'")
        parser.add_argument("--base-model", default="", help="a local model directory (default: deployed)")
        parser.add_argument("--queue", action="store_true", help="send the run to a gpu worker instead")

    def handle(self, *args, project, method, hyperparameters, base_model, queue, **options):
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"No project with slug '{project}'.")
        try:
            values = json.loads(hyperparameters)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--hyperparameters: not JSON ({exc}).") from None
        try:
            run = launch.training_run_create(
                project=found, actor=None, method=method, hyperparameters=values, base_model=base_model,
                send=queue,
            )  # fmt: skip
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Run {run.pk}: {run.snapshot.n_train} training and {run.snapshot.n_eval + run.snapshot.n_golden}"
            f" eval samples (snapshot {run.snapshot.content_hash[:12]}), method {method}."
        )
        if queue:
            self.stdout.write("Sent to the gpu queue.")
            return
        with tqdm(desc="training", unit="step", disable=None) as bar:

            def on_step(step, total, loss):
                bar.total = total
                bar.n = step
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.refresh()

            status = execute.training_run_execute(run_id=run.pk, on_step=on_step)
        run.refresh_from_db()
        self.stdout.write(f"Run {run.pk}: {status}. {run.status_reason}".rstrip())
        for side in ("candidate", "baseline"):
            m = run.metrics.get(side)
            if m:
                self.stdout.write(
                    f"  {side}: ROUGE-L {m['rouge_l']:.3f}  BLEU {m['bleu']:.3f}  EM {m['exact_match']:.3f}"
                    f"  F1 {m['f1']:.3f}  (n={m['n']})"
                )
        if status == "failed":
            raise CommandError(run.status_reason)
