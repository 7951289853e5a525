"""Turn approved samples into tokenized training examples, batches and a stable train/eval split."""

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100  # the label torch's cross-entropy skips: prompt and padding positions


def render_prompt(
    tokenizer, user_input: str, *, system: str | None = None, prompt_template: str = "{input}"
) -> str:
    """The exact text fed to the model before its answer; what `Drafter.render` produces at inference.

    With a chat template: an optional system turn, one user turn, and the assistant's opening. Without
    one: `prompt_template` with `{input}` replaced (the system text is not used there, as in Drafter).
    """
    if not uses_chat_template(tokenizer):
        return prompt_template.format(input=user_input)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user_input})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def uses_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _response_text(tokenizer, prompt_text: str, sample: Mapping, system: str | None) -> str:
    """The answer as the template writes it after the prompt (with its end-of-turn token), or plain."""
    if not uses_chat_template(tokenizer):
        return sample["output"]
    messages = [{"role": "system", "content": system}] if system else []
    messages += [
        {"role": "user", "content": sample["input"]},
        {"role": "assistant", "content": sample["output"]},
    ]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt_text):
        # Templates that rewrite earlier turns once an answer exists (e.g. strip "thinking") would make
        # the trained prompt differ from the inference prompt; refuse rather than train on a mismatch.
        raise ValueError("the chat template renders the prompt differently once the answer is added")
    return full[len(prompt_text) :]


@dataclass(frozen=True)
class Example:
    """One tokenized sample. `labels` is IGNORE_INDEX on prompt tokens: loss falls on the answer only."""

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
) -> Example:
    """Tokenize `sample` (`input`, `output`, optional `context` or `system`) for training.

    The prompt and the answer are tokenized separately, so the prompt tokens are exactly those inference
    feeds. The answer keeps the end-of-turn/eos token (the model must learn to stop) and nothing after
    it (a template's trailing newline is never generated).

    Truncation rule, when prompt + answer exceed `max_seq_len`: the prompt is guaranteed up to half the
    window; the answer keeps its beginning, cut to the room left; the prompt then keeps its *end* (the
    question's last words and the assistant header, which the answer follows). A cut answer has no eos.
    """
    system = sample.get("context") or sample.get("system") or system_prompt
    chat = uses_chat_template(tokenizer)
    prompt_text = render_prompt(tokenizer, sample["input"], system=system, prompt_template=prompt_template)
    # A chat template writes its own BOS; a plain template relies on the tokenizer adding it (as Drafter).
    prompt = tokenizer(prompt_text, add_special_tokens=not chat).input_ids
    response = tokenizer(_response_text(tokenizer, prompt_text, sample, system), add_special_tokens=False)
    response = list(response.input_ids)
    eos = tokenizer.eos_token_id
    if eos in response:
        response = response[: response.index(eos) + 1]
    else:
        response.append(eos)

    truncated = len(prompt) + len(response) > max_seq_len
    if truncated:
        response = response[: max_seq_len - min(len(prompt), max_seq_len // 2)]
        prompt = prompt[max(0, len(prompt) - (max_seq_len - len(response))) :]
    return Example(
        input_ids=prompt + response, labels=[IGNORE_INDEX] * len(prompt) + response, truncated=truncated
    )


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
