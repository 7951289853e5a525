"""Stage 3 of a run: candidate and baseline answer the held-out prompts; metrics, and the gate.

Each answers through its version's backend: the baseline (the deployed version) in-process or on its
server; the candidate likewise, where a LoRA of a served version is loaded into the server for the
evaluation (and unloaded after it; a deploy loads it again). A candidate the server cannot serve yet
(no dynamic adapter loading, or a full model) answers in-process from its local files. When the two
then run on different runtimes the comparison includes them; on the same weights in float32, llama.cpp
and transformers choose the same greedy tokens (tests/engine/test_gguf_export.py).
`metrics["evaluated_on"]` records where each side answered, and why the candidate did not use its server.
"""

from __future__ import annotations

from django.db import transaction

from core.errors import ApplicationError

from .. import backends
from ..drafting import clean_text, drafts_generate
from ..model_cache import ModelSpec
from ..models import (
    Backend,
    ModelVersionStatus,
    RunStatus,
    SnapshotSplit,
    TrainingRun,
)
from ..registry import generation_settings, model_spec
from ..snapshots import sample_prompt
from ..versions import model_version_write
from .human_eval import _human_eval_open
from .status import _heartbeat, _run_lock, _run_write


def _greedy(spec: ModelSpec, prompts: list[str], *, max_new_tokens: int) -> list[str]:
    drafts = drafts_generate(spec, prompts, max_new_tokens=max_new_tokens, temperature=0.0, num_candidates=1)
    return [clean_text(d.text) for d in drafts]


def _baseline_spec(run: TrainingRun) -> ModelSpec:
    if run.baseline is not None:
        return model_spec(run.baseline)
    return ModelSpec(version_id=0, base_model=run.base_model)  # no deployed version: the bare base model


def _evaluation_specs(run: TrainingRun) -> tuple[ModelSpec, ModelSpec, dict]:
    """How candidate and baseline generate for the evaluation, and a note of it (module docstring)."""
    baseline = _baseline_spec(run)
    note = {
        "baseline": baseline.server.base_url if baseline.server else "in-process",
        "candidate": "in-process",
    }
    candidate = run.candidate
    if candidate.backend != Backend.OPENAI:
        return model_spec(candidate), baseline, note
    try:
        outcome = backends.deploy_prepare(candidate)
    except ApplicationError as exc:
        note["why"] = f"its server cannot serve it yet: {exc.message}"
        return model_spec(candidate, in_process=True), baseline, note
    note.update(candidate=candidate.server_url, adapter=outcome.adapter)
    return model_spec(candidate), baseline, note


def gate_check(*, candidate: dict, baseline: dict, floor: float, tolerance: float) -> list[str]:
    """Why a candidate fails the project's gate (empty: it passes). Plain, for unit tests."""
    reasons = []
    if candidate["rouge_l"] < floor:
        reasons.append(f"ROUGE-L {candidate['rouge_l']:.3f} is under the floor {floor:.3f}")
    if candidate["rouge_l"] < baseline["rouge_l"] - tolerance:
        reasons.append(
            f"ROUGE-L {candidate['rouge_l']:.3f} is more than {tolerance:.3f} under the deployed model's "
            f"{baseline['rouge_l']:.3f}"
        )
    return reasons


def _evaluate(run: TrainingRun) -> str:
    """Candidate and baseline answer the eval items greedily; metrics, the gate, then the human round."""
    from ..engine.metrics import evaluate

    run = TrainingRun.objects.select_related("project", "candidate", "baseline", "snapshot").get(pk=run.pk)
    project = run.project
    rows = list(
        run.snapshot.samples.filter(split__in=[SnapshotSplit.EVAL, SnapshotSplit.GOLDEN]).order_by("item_id")
    )
    prompts = [sample_prompt(project, r) for r in rows]
    references = [r.output for r in rows]
    max_new = generation_settings(run.candidate.generation).max_new_tokens
    candidate_spec, baseline_spec, evaluated_on = _evaluation_specs(run)
    _heartbeat(run.pk)
    try:
        candidate_out = _greedy(candidate_spec, prompts, max_new_tokens=max_new)
    finally:
        if evaluated_on.get("adapter") == "loaded":  # loaded for this evaluation; a deploy loads it again
            backends.adapter_unload(run.candidate)
    _heartbeat(run.pk)
    baseline_out = _greedy(baseline_spec, prompts, max_new_tokens=max_new)
    _heartbeat(run.pk)
    cand, base = evaluate(candidate_out, references), evaluate(baseline_out, references)
    samples = [
        {
            "item": r.item_id,
            "split": r.split,
            "input": r.input,
            "reference": r.output,
            "candidate": c,
            "baseline": b,
            "candidate_scores": cs,
            "baseline_scores": bs,
        }
        for r, c, b, cs, bs in zip(
            rows, candidate_out, baseline_out, cand.pop("per_sample"), base.pop("per_sample"), strict=True
        )
    ]
    reasons = gate_check(
        candidate=cand,
        baseline=base,
        floor=project.eval_rouge_l_floor,
        tolerance=project.eval_rouge_l_tolerance,
    )
    gate = {
        "passed": not reasons,
        "reasons": reasons,
        "rouge_l_floor": project.eval_rouge_l_floor,
        "rouge_l_tolerance": project.eval_rouge_l_tolerance,
    }
    with transaction.atomic():
        run = _run_lock(run.pk)
        if run.status != RunStatus.EVALUATING:
            return run.status
        metrics = {"candidate": cand, "baseline": base, "evaluated_on": evaluated_on}
        recorded = {**run.metrics, **metrics}  # beside what training wrote (eval loss, why it stopped)
        if run.cancel_requested:
            _run_write(
                run,
                actor=None,
                to_status=RunStatus.CANCELLED,
                reason="cancelled by an admin",
                metrics=recorded,
                sample_outputs=samples,
                gate=gate,
            )
            return run.status
        if reasons:
            _run_write(
                run,
                actor=None,
                to_status=RunStatus.REJECTED,
                reason="; ".join(reasons),
                metrics=recorded,
                sample_outputs=samples,
                gate=gate,
            )
            return run.status
        model_version_write(
            run.candidate,
            to_status=ModelVersionStatus.EVALUATED,
            actor=None,
            action="model_version.evaluate",
            data=metrics,
        )
        _human_eval_open(run, samples, {r.item_id: r for r in rows})
        _run_write(
            run,
            actor=None,
            to_status=RunStatus.HUMAN_EVAL,
            metrics=recorded,
            sample_outputs=samples,
            gate=gate,
        )
        return run.status
