"""Helpers of the fine-tuning loop tests: a smaller tiny model, a learnable task, approvals, waiting."""

import functools
import os
import time
from pathlib import Path

from django.conf import settings

from annotation.models import Stage
from annotation.services import items_create
from annotation.workflow.transitions import item_submit
from tests.factories import MembershipFactory, UserFactory
from tests.workflow_helpers import claim

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Two kinds of question, each with its own answer: a tiny model learns the mapping in a few dozen steps
# and answers held-out questions of the same kinds, which the untrained model cannot.
TOPICS = [("refund", "Your refund is on its way."), ("delivery", "Your parcel arrives tomorrow.")]


def task_rows(n: int, start: int = 0) -> list[dict]:
    return [
        {"input": f"Question {i} about my {TOPICS[i % 2][0]}?", "reference_output": TOPICS[i % 2][1]}
        for i in range(start, start + n)
    ]


def answer_for(question: str) -> str:
    return next(answer for topic, answer in TOPICS if topic in question)


@functools.cache
def small_model_path() -> Path:
    """Hidden 64, vocabulary 1000: a training step takes milliseconds on CPU."""
    from training.engine.tiny_model import build_tiny_model

    out = Path(settings.VAR_DIR) / "test-models" / "small"
    if not (out / "config.json").exists():
        build_tiny_model(out, hidden_size=64, num_layers=2, vocab_size=1000)
    return out


FAST_TRAINING = {
    "learning_rate": 1e-2,
    "warmup_ratio": 0.0,
    "max_steps": 40,
    "batch_size": 8,
    "max_seq_len": 64,
    "checkpoint_every": 0,
}


def annotators(project, n: int) -> list:
    people = []
    for _ in range(n):
        user = UserFactory()
        MembershipFactory(project=project, user=user, role="annotator")
        people.append(user)
    return people


def approve_one(project, annotator):
    """Claim the next item and submit the right answer for it (one tier: the submission approves)."""
    item = claim(project, annotator, Stage.ANNOTATE)
    item = item_submit(item_id=item.pk, user=annotator, text=answer_for(item.input), version=item.version)
    assert item.status == "approved"
    return item


def approve_all(project, n: int, start: int = 0) -> None:
    """Create n items and approve each through the real workflow."""
    assert project.review_tiers == 1
    items_create(project=project, actor=None, rows=task_rows(n, start))
    (annotator,) = annotators(project, 1)
    for _ in range(n):
        approve_one(project, annotator)


def route_named_task(monkeypatch, name: str, handler) -> None:
    """The task `name`, when a lower layer sends it by name (core.hooks.task_send), runs `handler` in the
    sending thread instead of going to the broker; every other named task is sent as usual."""
    from core import hooks

    send = hooks.task_send

    def routed(task_name, *args, **options):
        return handler(*args) if task_name == name else send(task_name, *args, **options)

    monkeypatch.setattr(hooks, "task_send", routed)


TRIGGER_CHECK = "training.trigger.training_trigger_check"


def wait_until(condition, timeout=120.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False
