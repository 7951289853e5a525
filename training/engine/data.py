"""Turn approved samples into tokenized training examples, batches and a stable train/eval split."""

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .prompts import Prompt, prompt_layout, render_prompt, render_reply, uses_chat_template

if TYPE_CHECKING:
    import torch

__all__ = ["IGNORE_INDEX", "Example", "encode_sample", "render_prompt", "uses_chat_template"]

IGNORE_INDEX = -100  # the label torch's cross-entropy skips: prompt and padding positions


@dataclass(frozen=True)
class Example:
    """One tokenized sample. `labels` is IGNORE_INDEX on every token but the assistant text trained on."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_sample(
    tokenizer,
    sample: Mapping,
    *,
    max_seq_len: int,
    prompt_template: str = "{input}",
    system_prompt: str | None = None,
    mask_history: bool = True,
) -> Example:
    """Tokenize `sample` for training: a conversation (`messages` before the reply, optional `system`,
    `tools`, `reply_extra`) or a single turn (`input`, optional `context` or `system`), and `output`.

    The prompt (every turn before the reply) is rendered by `render_prompt` and tokenized in one piece,
    so its tokens are exactly those Drafter feeds at inference; the reply is tokenized after it. The
    reply keeps its end-of-turn/eos token (the model must learn to stop) and nothing after it (a
    template's trailing newline is never generated). Loss falls on assistant text only: with
    `mask_history` on the reply; off, every earlier assistant turn too (LLaMA-Factory's mask_history),
    each with its end-of-turn token, found in the prompt by `prompt_layout`.

    Truncation, when prompt + reply exceed `max_seq_len`: the prompt is guaranteed up to half the
    window; the reply keeps its beginning, cut to the room left (a cut reply has no eos); the prompt
    keeps its *end*: the earliest turns go first, the system prompt with them, and the cut moves on to
    the beginning of the next user turn, so what is kept is a conversation that starts with the user
    and has no half turn (nor half an assistant turn trained). Only when the last turn alone does not
    fit is it cut inside, keeping its end (the question's last words and the assistant's opening, which
    the reply follows), as a single turn always was.
    """
    prompt = Prompt.of(sample)
    system = prompt.system or system_prompt
    chat = uses_chat_template(tokenizer)
    prompt_text = render_prompt(tokenizer, prompt, system=system, prompt_template=prompt_template)
    # A chat template writes its own BOS; a plain template relies on the tokenizer adding it (as Drafter).
    offsets_known = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(prompt_text, add_special_tokens=not chat, return_offsets_mapping=offsets_known)
    ids = list(encoded.input_ids)
    offsets = [tuple(o) for o in encoded["offset_mapping"]] if offsets_known else None
    labels = [IGNORE_INDEX] * len(ids)
    layout = None
    if not mask_history and any(turn.get("role") == "assistant" for turn in prompt.messages):
        layout = prompt_layout(tokenizer, prompt, system=system, prompt_template=prompt_template)
        _label_assistant_turns(layout, ids, offsets, labels)

    reply = render_reply(tokenizer, prompt, sample["output"], reply_extra=sample.get("reply_extra"),
                         system=system, prompt_template=prompt_template)  # fmt: skip
    response = list(tokenizer(reply, add_special_tokens=False).input_ids)
    eos = tokenizer.eos_token_id
    if eos in response:
        response = response[: response.index(eos) + 1]
    else:
        response.append(eos)

    truncated = len(ids) + len(response) > max_seq_len
    if truncated:
        response = response[: max_seq_len - min(len(ids), max_seq_len // 2)]
        cut = len(ids) - (max_seq_len - len(response))
        if cut > 0 and offsets is not None and len(prompt.messages) > 1:
            if layout is None:
                layout = prompt_layout(tokenizer, prompt, system=system, prompt_template=prompt_template)
            cut = _cut_at_a_turn(cut, layout, offsets, prompt.messages)
        ids, labels = ids[max(0, cut) :], labels[max(0, cut) :]
    return Example(input_ids=ids + response, labels=labels + response, truncated=truncated)


def _label_assistant_turns(layout, ids: list[int], offsets, labels: list[int]) -> None:
    """Label the tokens of each earlier assistant turn's own text: each token that ends inside it. A
    token that starts before it (a template's trailing space merged into the first word) is trained
    too, so no turn loses its first word."""
    if offsets is None:
        raise ValueError("training every assistant turn (mask_history off) needs a fast tokenizer")
    for turn, span in layout.assistant_spans.items():
        if span is None:
            raise ValueError(
                f"turn {turn + 1}: the chat template writes this assistant turn differently once later "
                "turns follow, so it cannot be trained where it stands; train with mask_history on"
            )
        low, high = span
        for position, (start, end) in enumerate(offsets):
            if end > start and low < end <= high:
                labels[position] = ids[position]


def _cut_at_a_turn(cut: int, layout, offsets, messages) -> int:
    """The first user turn beginning at or after token `cut` (a conversation starts with the user),
    unless that is past the last turn's beginning, which must stay: then `cut` itself."""

    def token_at(char: int) -> int:
        found = (i for i, (start, end) in enumerate(offsets) if start >= char and end > start)
        return next(found, len(offsets))

    last = layout.turn_starts[-1]
    if last is None:
        return cut
    starts = [
        token_at(char)
        for char, turn in zip(layout.turn_starts, messages, strict=True)
        if char is not None and turn.get("role") == "user"
    ]
    candidates = [s for s in starts if cut <= s <= token_at(last)]
    return min(candidates) if candidates else cut


def split_score(sample_id) -> float:
    """A number in [0, 1) from a hash of the sample's id alone: stable as the data set grows."""
    digest = hashlib.sha256(str(sample_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_for(sample_id, eval_fraction: float) -> str:
    """ "train" or "eval" for a sample, by its split_score."""
    return "eval" if split_score(sample_id) < eval_fraction else "train"


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, megabatch_size: int = 64
) -> list[list[int]]:
    """Indices cut into batches of similar length, in an order fixed by (seed, epoch).

    Shuffle, cut into megabatches of `megabatch_size` batches, sort each megabatch by length, cut it into
    batches, shuffle the batches. Padding to the longest in each batch then wastes little, while the order
    stays random at the scale of a megabatch. Chosen over packing: packing several samples into one row
    needs a block-diagonal attention mask (or varlen flash attention) to keep samples from attending to
    each other, which plain SDPA on CPU pays for quadratically; grouping needs no change to the model.
    The same seed and epoch give the same batches, so a resumed run sees the same data order.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * megabatch_size
    batches = []
    for start in range(0, len(order), span):
        mega = sorted(order[start : start + span], key=lambda i: lengths[i], reverse=True)
        batches += [mega[j : j + batch_size] for j in range(0, len(mega), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_token_id: int) -> "dict[str, torch.Tensor]":
    """Right-pad to the longest example of the batch (dynamic padding); padding is masked and unlabelled."""
    import torch

    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        input_ids[row, : len(e)] = torch.tensor(e.input_ids)
        labels[row, : len(e)] = torch.tensor(e.labels)
        attention_mask[row, : len(e)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
