"""Snapshots: the approved conversations a run trains on, frozen (redacted, hashed, split) and written as
a LLaMA-Factory dataset folder; and what the model is asked for each of them."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from django.conf import settings
from django.db.models import Exists, OuterRef

from annotation.dataio import exporters
from annotation.dataio.conversation import canonical_json, single_turn
from annotation.exporting.services import export_samples
from annotation.models import Item, ItemStatus, Project

from .drafting import item_prompt
from .engine.data import split_for, split_score
from .engine.prompts import Prompt
from .models import DatasetSnapshot, SnapshotSample, SnapshotSplit

logger = logging.getLogger(__name__)


def approved_unsnapshotted(*, project_id: int):
    """Approved items of the project that no snapshot holds yet: what a new run would add (gold
    items, checks of people, never count)."""
    return Item.objects.filter(project_id=project_id, status=ItemStatus.APPROVED, is_gold=False).exclude(
        Exists(SnapshotSample.objects.filter(item=OuterRef("pk")))
    )


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def sample_hash(*, system: str, messages: list, tools: list, output: str, reply_extra: dict) -> str:
    """Identity of a frozen sample: the whole conversation and its reply. A single plain user turn
    hashes as samples did before conversations, so a snapshot of unchanged single-turn data keeps its
    hash across the upgrade."""
    plain = len(messages) == 1 and set(messages[0]) == {"role", "content"} and messages[0]["role"] == "user"
    if plain and not tools and not reply_extra:
        return _hash(messages[0]["content"], system, output)
    body = {
        "system": system,
        "messages": messages,
        "tools": tools,
        "output": output,
        "reply_extra": reply_extra,
    }
    return _hash("conversation", canonical_json(body))


def snapshot_create(*, project: Project, eval_fraction: float | None = None) -> DatasetSnapshot:
    """Freeze the project's approved samples, redacted as exports are, with a content hash and a split.

    A sample is the conversation as approved: its system prompt, the turns before the reply with the
    current revision's earlier-turn edits applied, its tools, and the reply (`export_samples`).

    The eval split is `split_for(item id)`, so an item keeps its side as the data grows; golden items
    (Project.golden_item_ids) are always evaluated and never trained on. With no eval item at all but at
    least two samples, the item whose id hashes lowest (the first `split_for` would move) is held out.
    Call inside the transaction that creates the run.
    """
    fraction = settings.HANDOVER_EVAL_FRACTION if eval_fraction is None else eval_fraction
    golden = set(project.golden_item_ids or [])
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="", eval_fraction=fraction)
    rows = []
    for sample in export_samples(project=project):
        item_id = sample["metadata"]["id"]
        if item_id in golden:
            split = SnapshotSplit.GOLDEN
        else:
            split = SnapshotSplit.EVAL if split_for(item_id, fraction) == "eval" else SnapshotSplit.TRAIN
        conversation = {key: sample[key] for key in ("system", "messages", "tools", "output", "reply_extra")}
        rows.append(
            SnapshotSample(
                snapshot=snapshot,
                item_id=item_id,
                split=split,
                input=sample["input"],
                **conversation,
                sample_hash=sample_hash(**conversation),
            )
        )
    held_out = [r for r in rows if r.split != SnapshotSplit.TRAIN]
    trained = [r for r in rows if r.split == SnapshotSplit.TRAIN]
    if not held_out and len(trained) >= 2:
        min(trained, key=lambda r: split_score(r.item_id)).split = SnapshotSplit.EVAL
    SnapshotSample.objects.bulk_create(rows, batch_size=2000)
    snapshot.content_hash = _hash(*(f"{r.item_id}:{r.sample_hash}" for r in rows))
    snapshot.n_train = sum(r.split == SnapshotSplit.TRAIN for r in rows)
    snapshot.n_eval = sum(r.split == SnapshotSplit.EVAL for r in rows)
    snapshot.n_golden = sum(r.split == SnapshotSplit.GOLDEN for r in rows)
    snapshot.save(update_fields=["content_hash", "n_train", "n_eval", "n_golden"])
    return snapshot


def _export_sample(row: SnapshotSample) -> dict:
    """A frozen sample in the shape the annotation exporters read (`export_samples`' own)."""
    return {
        "input": row.input,
        "system": row.system,
        "messages": row.messages or single_turn(row.input),
        "tools": row.tools,
        "output": row.output,
        "reply_extra": row.reply_extra,
        "draft": "",
        "metadata": {"id": row.item_id},
    }


def snapshot_files_write(*, snapshot: DatasetSnapshot, directory: Path) -> dict:
    """The snapshot in LLaMA-Factory's formats with its dataset_info.json, so `directory` can be
    LLaMA-Factory's dataset_dir: train and eval files as sharegpt (every turn, the system prompt and
    tools) and as alpaca (earlier turns as `history`). A format that cannot hold one of a split's
    conversations (alpaca and tool calls; sharegpt and a turn with both text and tool calls) has no file
    for that split, and `snapshot.json` says which sample and why under "not_written". Idempotent."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"snapshot_{snapshot.pk}"
    held_out = [SnapshotSplit.EVAL, SnapshotSplit.GOLDEN]
    files = {
        f"{name}_train_alpaca": ("alpaca", [SnapshotSplit.TRAIN]),
        f"{name}_train_sharegpt": ("sharegpt", [SnapshotSplit.TRAIN]),
        f"{name}_eval_alpaca": ("alpaca", held_out),
        f"{name}_eval_sharegpt": ("sharegpt", held_out),
    }
    writers = {"alpaca": exporters.write_alpaca_jsonl, "sharegpt": exporters.write_sharegpt_jsonl}
    info, not_written = {}, {}
    for dataset, (fmt, splits) in files.items():
        file_name = f"{dataset}.jsonl"
        rows = snapshot.samples.filter(split__in=splits).order_by("item_id")
        tmp = directory / f".{file_name}.tmp"
        try:
            with open(tmp, "wb") as stream:
                writers[fmt]((_export_sample(r) for r in rows.iterator(chunk_size=2000)), stream)
        except exporters.ExportValidationError as exc:
            # The trainer reads the snapshot itself; a file format that cannot hold one of its
            # conversations is left out of the folder, saying which sample and why.
            tmp.unlink(missing_ok=True)
            (directory / file_name).unlink(missing_ok=True)
            not_written[dataset] = str(exc)
            logger.warning("snapshot %s: %s not written: %s", snapshot.pk, file_name, exc)
            continue
        tmp.replace(directory / file_name)
        info[dataset] = exporters.dataset_info_entry(fmt, file_name)
    (directory / "dataset_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False))
    (directory / "snapshot.json").write_text(
        json.dumps(
            {
                "snapshot": snapshot.pk,
                "content_hash": snapshot.content_hash,
                "eval_fraction": snapshot.eval_fraction,
                "not_written": not_written,
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return info


def sample_prompt(project: Project, row: SnapshotSample) -> Prompt:
    """What the model is asked for a frozen sample: its conversation, exactly as drafting asks it."""
    messages = row.messages or single_turn(row.input)
    return item_prompt(project, messages=messages, system=row.system, tools=row.tools)
