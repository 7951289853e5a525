"""The supervised loss shared by the trainer's objectives: logits of the answer tokens only, and the
summed cross-entropy over them (`engine.preference` builds its log-probabilities on the same logits)."""

import torch
import torch.nn.functional as F

from .data import IGNORE_INDEX

# Transformers' own forward computes logits at every position; these configs change logits after the
# output projection, so for them we use that forward instead of projecting the answer positions only.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


class AnswerLoss(torch.nn.Module):
    """Summed cross-entropy over the answer tokens of a right-padded batch, as a module around the model:
    DDP and FSDP act in a module's forward, and this forward is where the model's weights are used.

    No attention mask is passed: with padding only on the right, the causal mask alone keeps every real
    token from seeing a pad, and SDPA can take its fused causal path instead of a materialised mask.
    The vocabulary projection, the largest matmul of a small model, runs only where there is a label.
    """

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        keep = targets != IGNORE_INDEX
        logits = answer_logits(self.model, input_ids, keep)
        return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


def answer_logits(model, input_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The logits predicting each labelled token (`keep`: where the shifted targets are labelled), one
    row per such token."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if any(getattr(base.config, name, None) for name in _LOGIT_POSTPROCESSING):
        return model(input_ids=input_ids).logits[:, :-1][keep]
    hidden = base.get_decoder()(input_ids=input_ids).last_hidden_state
    return base.get_output_embeddings()(hidden[:, :-1][keep])
