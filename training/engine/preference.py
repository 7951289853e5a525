"""Preference training (DPO) for the trainer's loop: pairs as data, the DPO loss as the loss module.

`trainer.train` with `config.objective == "dpo"` runs the same loop as supervised fine-tuning (LoRA,
freeze, full; checkpoints, resume, cancel, evaluation, several processes) on pairs: a conversation with
a `chosen` and a `rejected` reply. A step's batch holds each pair's chosen row and its rejected row; the
loss is DPO's sigmoid loss (Rafailov et al. 2023, as TRL's `DPOTrainer` with `loss_type="sigmoid"`):

    margin = beta · ((log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected)))
    loss   = −(1 − ε) · log σ(margin) − ε · log σ(−margin)          (ε: label_smoothing)

where log π(·) is the summed log-probability of the reply's tokens (those `encode_sample` labels) given
the conversation. The reference π_ref is the model as training starts: the deployed model (base + its
adapter, `config.init_adapter`) for a preference run, the SFT result after an SFT stage. Its
log-probabilities are computed once, before the first step, with dropout off (TRL's
`precompute_ref_log_probs`), and kept in `reference-logps.pt` beside the checkpoints, so a resumed run
uses the same ones although its weights have moved. No second copy of the model is held, which is what
TRL's LoRA path gets by disabling the adapter, and it holds for freeze and full as well.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import IGNORE_INDEX, Example, collate
from .losses import answer_logits

REFERENCE_FILE = "reference-logps.pt"


@dataclass(frozen=True)
class PairExample:
    chosen: Example
    rejected: Example


class PairData:
    """The loop's view of a split of pairs (as trainer.AnswerData's of samples): each pair's length (both
    rows' tokens), a batch as PreferenceLoss's arguments, and its weight in the mean loss (one)."""

    def __init__(self, pairs: Sequence[PairExample], pad_id: int) -> None:
        self.pairs, self.pad_id = list(pairs), pad_id
        self.lengths = [len(p.chosen) + len(p.rejected) for p in self.pairs]
        self.reference: torch.Tensor | None = None  # (n, 2): π_ref of chosen, rejected

    @classmethod
    def encode(cls, pairs: Sequence[Mapping], encode: Callable, pad_id: int) -> "PairData":
        """`encode` tokenizes samples (trainer.train's, with the run's template and truncation)."""
        for n, pair in enumerate(pairs):
            for key in ("chosen", "rejected"):
                if not isinstance(pair.get(key), str):
                    raise ValueError(f"pair {n + 1}: {key} must be the text of a reply")
        chosen = encode([{**p, "output": p["chosen"]} for p in pairs])
        rejected = encode([{**p, "output": p["rejected"]} for p in pairs])
        return cls([PairExample(c, r) for c, r in zip(chosen, rejected, strict=True)], pad_id)

    def rows(self, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and shifted targets: the chosen rows of `ids`, then their rejected rows."""
        examples = [self.pairs[i].chosen for i in ids] + [self.pairs[i].rejected for i in ids]
        batch = collate(examples, self.pad_id)
        return batch["input_ids"], batch["labels"][:, 1:]

    def batch(self, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.reference is None:
            raise RuntimeError("the reference log-probabilities are not computed yet")
        return (*self.rows(ids), self.reference[list(ids)])

    def weight(self, i: int) -> int:
        return 1


def answer_log_probs(model, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each row's summed log-probability of its labelled tokens, in float32: log π(reply | prompt)."""
    keep = targets != IGNORE_INDEX
    logits = answer_logits(model, input_ids, keep).float()
    token = -F.cross_entropy(logits, targets[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    return torch.zeros(input_ids.shape[0], device=token.device, dtype=token.dtype).index_add_(0, rows, token)


def dpo_losses(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """DPO's sigmoid loss per pair from the four summed log-probabilities (module docstring)."""
    margin = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    return -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)


class PreferenceLoss(torch.nn.Module):
    """The summed DPO loss of a batch of pairs, as a module around the model (DDP and FSDP act in a
    module's forward): one forward over the chosen and the rejected rows together."""

    def __init__(self, model, *, beta: float, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.model, self.beta, self.label_smoothing = model, beta, label_smoothing

    def forward(self, input_ids, targets, reference) -> torch.Tensor:
        logps = answer_log_probs(self.model, input_ids, targets)
        chosen, rejected = logps.chunk(2)
        reference = reference.to(logps.dtype)
        losses = dpo_losses(
            chosen,
            rejected,
            reference[:, 0],
            reference[:, 1],
            beta=self.beta,
            label_smoothing=self.label_smoothing,
        )
        return losses.sum()


@torch.no_grad()
def pair_log_probs(model, data: PairData, *, batch_size: int, device, dtype=None) -> torch.Tensor:
    """(n, 2): the model's summed log-probability of each pair's chosen and rejected reply, dropout off.
    The measure the tests compare before and after training, and the reference before it."""
    was_training = model.training
    model.eval()
    out = torch.zeros(len(data.pairs), 2, dtype=torch.float32)
    try:
        for start in range(0, len(data.pairs), batch_size):
            ids = list(range(start, min(start + batch_size, len(data.pairs))))
            input_ids, targets = data.rows(ids)
            with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                logps = answer_log_probs(model, input_ids.to(device), targets.to(device))
            out[start : start + len(ids)] = logps.view(2, len(ids)).T.cpu()
    finally:
        model.train(was_training)
    return out


def reference_log_probs(
    model, splits: Sequence[PairData], config, cluster, device, dtype, *, resumed
) -> None:
    """Fill in each split's `reference`: computed now by the model as it starts (rank 0, then written
    for the others and for a resume), or, when the run resumes from a checkpoint, read from what its
    first attempt wrote."""
    path = Path(config.output_dir) / REFERENCE_FILE
    sizes = [len(s.pairs) for s in splits]
    if resumed is None and cluster.is_main:
        computed = [
            pair_log_probs(model, s, batch_size=config.batch_size, device=device, dtype=dtype) for s in splits
        ]
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"sizes": sizes, "reference": computed}, tmp)
        tmp.rename(path)
    cluster.barrier()
    if not path.exists():
        raise ValueError(f"cannot resume: {path} is missing, the reference log-probabilities of the run")
    saved = torch.load(path, weights_only=True)
    if saved["sizes"] != sizes:
        raise ValueError(f"cannot resume: the reference has {saved['sizes']} pairs, the run {sizes}")
    for split, reference in zip(splits, saved["reference"], strict=True):
        split.reference = reference
