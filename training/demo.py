"""The demo's model: build the tiny model when no base model is configured, deploy it, draft the items."""

import shutil
import tempfile
from pathlib import Path

from django.conf import settings

from annotation.demo import DEMO_ANSWERS, DEMO_PROJECT, DEMO_PROMPTS
from annotation.models import Project

from .base_model import default_base_model
from .drafting import project_drafting_request, undrafted_items
from .engine.model_files import build_once
from .registry import model_version_deploy, model_version_register
from .selectors import model_version_deployed

DEMO_GENERATION = {"max_new_tokens": 48, "temperature": 0.8, "seed": 0}
# A short full fine-tune (about 10 s on two CPU cores) that takes the tiny model from noise to drafts that
# read like answers: ROUGE-L about 0.75 against the demo answers, confidences between 0.5 and 0.75.
DEMO_WARM_UP = {
    "method": "full",
    "learning_rate": 3e-3,
    "max_steps": 200,
    "batch_size": 8,
    "max_seq_len": 160,
    "warmup_ratio": 0.05,
}


def demo_model_build(out_dir: Path, stdout=None) -> Path:
    """The demo's base model, built once: the tiny model with its tokenizer trained on the demo's texts,
    fine-tuned on the demo's answers. It is moved into place only when complete (`build_once`)."""

    def build(directory: Path) -> None:
        from .engine.tiny_model import build_tiny_model, default_corpus
        from .engine.trainer import TrainConfig, train

        if stdout is not None:
            stdout.write("Building the demo model (a tiny model warmed up on the demo answers; about 15 s).")
        with tempfile.TemporaryDirectory(dir=directory.parent) as work:
            texts = default_corpus() + DEMO_PROMPTS + list(DEMO_ANSWERS.values())
            base = build_tiny_model(Path(work) / "tiny", texts)
            template = DEMO_PROJECT["prompt_template"]
            samples = [
                {"input": template.format(input=q, context=""), "output": a} for q, a in DEMO_ANSWERS.items()
            ]
            config = TrainConfig(output_dir=str(Path(work) / "run"), seed=0, **DEMO_WARM_UP)
            result = train(config, str(base), samples)
            shutil.move(str(result.model_dir), str(directory))

    build_once(out_dir, build)
    return out_dir


def demo_model_ensure(*, project: Project, stdout=None) -> None:
    """Idempotent: a second run finds the deployed version and only asks for drafts that are missing."""
    if model_version_deployed(project_id=project.pk) is None:
        if settings.HANDOVER_BASE_MODEL:
            base_model = default_base_model()
        else:
            base_model = str(demo_model_build(settings.HANDOVER_MODELS_DIR / "demo", stdout=stdout))
        version = model_version_register(
            project=project,
            actor=None,
            name="demo base model",
            base_model=base_model,
            generation=DEMO_GENERATION,
        )
        model_version_deploy(version_id=version.pk, actor=None)  # drafting starts on commit
        if stdout is not None:
            stdout.write(f"Deployed '{version.name}' ({version.base_model}); drafting the demo items.")
    elif undrafted_items(project_id=project.pk).exists():
        project_drafting_request(project_id=project.pk)
