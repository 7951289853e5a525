"""The judged pairs a preference run trains on: frozen at launch into `pairs.json` in the run's directory.

A run trains on the pairs as they were decided when it was launched, as an SFT run trains on its
DatasetSnapshot: later judgements never change what it learned from. The texts are redacted as
exports are (the snapshot's are too). A pair's side is `split_for("pair:<id>")`, stable as the pairs
grow; with no eval pair but at least two, the pair whose id hashes lowest is held out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.conf import settings

from annotation.exporting.services import redact_for_export
from annotation.models import Project
from review.preference.exporting import redacted_turn
from review.preference.selectors import decided_pairs

from ..engine.data import split_for, split_score

PAIRS_FILE = "pairs.json"


def preference_pairs_freeze(*, project: Project) -> dict:
    """The project's decided pairs now: {"train": [...], "eval": [...], "counts", "content_hash"}; each
    pair as the trainer reads it (`system`, `messages`, `chosen`, `rejected`) with its `pair` id."""
    fraction = settings.HANDOVER_EVAL_FRACTION
    found, counts = decided_pairs(project=project)
    rows = [
        {
            "pair": pair.pair_id,
            "system": redact_for_export(pair.system or ""),
            "messages": [redacted_turn(t) for t in pair.messages],
            "chosen": redact_for_export(pair.chosen),
            "rejected": redact_for_export(pair.rejected),
        }
        for pair in found
    ]
    held_out = {r["pair"] for r in rows if split_for(f"pair:{r['pair']}", fraction) == "eval"}
    if not held_out and len(rows) >= 2:
        held_out = {min(rows, key=lambda r: split_score(f"pair:{r['pair']}"))["pair"]}
    train = [r for r in rows if r["pair"] not in held_out]
    evaluate = [r for r in rows if r["pair"] in held_out]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return {
        "train": train,
        "eval": evaluate,
        "counts": {
            "train": len(train),
            "eval": len(evaluate),
            "ties": counts["tie"],
            "split": counts["split"],
        },
        "content_hash": digest,
    }


def preference_pairs_write(*, directory: Path, frozen: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PAIRS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(frozen, ensure_ascii=False), encoding="utf-8")
    tmp.rename(path)
    return path


def preference_pairs_read(*, directory: Path) -> dict:
    path = directory / PAIRS_FILE
    if not path.exists():
        raise ValueError(f"the run's frozen pairs are missing: {path}")
    return json.loads(path.read_text(encoding="utf-8"))
