"""Batched draft generation from a local causal LM (optionally through LoRA adapters), with a confidence;
and the model's next-token probabilities over a few labels (what a model judge reads)."""

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .device import pick_device, pick_dtype
from .prompts import Prompt, render_prompt, uses_chat_template


@dataclass(frozen=True)
class Candidate:
    """One generated continuation. `num_tokens` counts the generated tokens up to and including the stop
    token (the cost of the draft); `text` is their decoding without special tokens."""

    text: str
    confidence: float
    num_tokens: int


@dataclass(frozen=True)
class Draft:
    """The drafts for one prompt (a question or a conversation), best (highest confidence) first."""

    prompt: str | Prompt
    candidates: tuple[Candidate, ...]

    @property
    def text(self) -> str:
        return self.candidates[0].text

    @property
    def confidence(self) -> float:
        return self.candidates[0].confidence

    @property
    def num_tokens(self) -> int:
        return self.candidates[0].num_tokens


def generated_token_mask(tokens: torch.Tensor, stop_ids: Sequence[int]) -> torch.Tensor:
    """True for each generated token up to and including the first stop token of its row.

    `generate` keeps stepping until every row of the batch has stopped and fills finished rows with the
    pad token; those fillers are not part of the answer and must not count.
    """
    is_stop = torch.isin(tokens, torch.tensor(list(stop_ids), device=tokens.device))
    stops_before = torch.cumsum(is_stop.int(), dim=1) - is_stop.int()
    return stops_before == 0


def sequence_confidence(
    step_logits: Sequence[torch.Tensor], tokens: torch.Tensor, stop_ids: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence of each generated sequence, and its token count.

    Confidence is the geometric mean of the probabilities the model gave to the tokens it emitted:
    exp(mean log p(token_t | prefix)). Unlike the product of probabilities (the sequence likelihood) it
    does not shrink with length, so a long and a short draft are comparable; unlike the minimum or the
    first-token probability it reflects every token. It lies in [0, 1], and 1 means the model had no
    doubt at any step.

    `step_logits` are the raw logits (before temperature / top-p warping), one (batch, vocab) tensor per
    step, so the score is the model's own belief whatever the sampling settings. `tokens` is
    (batch, steps).
    """
    mask = generated_token_mask(tokens, stop_ids)
    logprobs = torch.stack(
        [
            torch.log_softmax(logits.float(), dim=-1).gather(1, tokens[:, t : t + 1]).squeeze(1)
            for t, logits in enumerate(step_logits)
        ],
        dim=1,
    )
    counts = mask.sum(dim=1)
    mean_logprob = (logprobs * mask).sum(dim=1) / counts.clamp(min=1)
    confidence = torch.where(counts > 0, mean_logprob.exp(), torch.zeros_like(mean_logprob))
    return confidence.clamp(0.0, 1.0), counts


class Drafter:
    """A base model loaded once, which drafts answers to many prompts in length-grouped, left-padded batches.

    A prompt is a question (one user turn) or a `Prompt` (a conversation's turns before the reply, its
    system prompt and tools). It is rendered by `prompts.render_prompt`, the rendering the trainer uses:
    the tokenizer's chat template when it has one (`system_prompt` when the prompt has no system turn of
    its own), else the plain turns with `prompt_template` around each user turn.

    LoRA adapters are attached to the same base model object with peft; switching between them (or back
    to the plain base model) never reloads the base weights. Not thread-safe: one generation at a time.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        prompt_template: str = "{input}",
        system_prompt: str | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.device = device or pick_device()
        self.dtype = dtype or pick_dtype(self.device)
        self.prompt_template = prompt_template
        self.system_prompt = system_prompt
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        # Decoder-only models continue from the last position, so padding must go on the left; otherwise
        # the first generated token of a shorter prompt would follow pad tokens.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.base_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype).to(self.device)
        self.base_model.eval()
        self.model = self.base_model  # becomes a PeftModel wrapping base_model on the first adapter
        self._adapters: set[str] = set()
        self._active_adapter: str | None = None
        self.stop_ids = self._stop_ids()

    def _stop_ids(self) -> list[int]:
        configured = self.base_model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(self.tokenizer.eos_token_id)
        return sorted(i for i in ids if i is not None)

    @property
    def uses_chat_template(self) -> bool:
        return uses_chat_template(self.tokenizer)

    def render(self, prompt: str | Prompt) -> str:
        """The exact text fed to the model for `prompt`."""
        return render_prompt(
            self.tokenizer, prompt, system=self.system_prompt, prompt_template=self.prompt_template
        )

    def _encode(self, prompt: str | Prompt) -> list[int]:
        # A chat template writes its own BOS; a plain template relies on the tokenizer adding it.
        return self.tokenizer(self.render(prompt), add_special_tokens=not self.uses_chat_template).input_ids

    # Adapters -------------------------------------------------------------------------------------

    @property
    def adapters(self) -> frozenset[str]:
        return frozenset(self._adapters)

    @property
    def active_adapter(self) -> str | None:
        return self._active_adapter

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Attach the LoRA adapter saved at `path` under `name`. Does not change which one is used."""
        from peft import PeftModel

        if name in self._adapters:
            raise ValueError(f"adapter {name!r} is already loaded")
        if self.model is self.base_model:
            self.model = PeftModel.from_pretrained(self.base_model, str(path), adapter_name=name)
        else:
            self.model.load_adapter(str(path), adapter_name=name)
        self.model.eval()
        self._adapters.add(name)
        if self._active_adapter is not None:
            self.model.set_adapter(self._active_adapter)

    def use_adapter(self, name: str | None) -> None:
        """Generate through adapter `name` from now on; None means the plain base model."""
        if name is not None:
            if name not in self._adapters:
                raise KeyError(f"adapter {name!r} is not loaded")
            self.model.set_adapter(name)
        self._active_adapter = name

    def _adapter_context(self):
        if self.model is not self.base_model and self._active_adapter is None:
            return self.model.disable_adapter()
        return nullcontext()

    # Generation -----------------------------------------------------------------------------------

    def draft(
        self,
        prompts: Sequence[str | Prompt],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_candidates: int = 1,
        batch_size: int = 16,
        seed: int | None = None,
    ) -> list[Draft]:
        """One `Draft` per prompt, in the order of `prompts`.

        temperature 0 is greedy decoding; above 0 it samples (with `top_p`). `num_candidates` (1-5) >1
        needs sampling. Prompts are sorted by token length and cut into batches of `batch_size`, so each
        batch carries little padding. Other generation settings come from the model's generation config.
        """
        if not 1 <= num_candidates <= 5:
            raise ValueError("num_candidates must be between 1 and 5")
        if num_candidates > 1 and temperature <= 0:
            raise ValueError("num_candidates > 1 needs temperature > 0 (greedy gives one answer)")
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be positive")
        encoded = [self._encode(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if temperature > 0
            else {"do_sample": False}
        )
        results: list[Draft | None] = [None] * len(prompts)
        rng = torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])
        with rng, torch.inference_mode(), self._adapter_context():
            if seed is not None:
                torch.manual_seed(seed)
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                candidates = self._generate(
                    [encoded[i] for i in batch], max_new_tokens, num_candidates, sampling
                )
                for i, cands in zip(batch, candidates, strict=True):
                    results[i] = Draft(prompt=prompts[i], candidates=cands)
        return results  # type: ignore[return-value]

    def _padded(self, batch: list[list[int]]):
        return self.tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt").to(self.device)

    def _generate(
        self, batch: list[list[int]], max_new_tokens: int, num_candidates: int, sampling: dict
    ) -> list[tuple[Candidate, ...]]:
        inputs = self._padded(batch)
        out = self.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_candidates,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.stop_ids,
            output_logits=True,
            return_dict_in_generate=True,
            **sampling,
        )
        new_tokens = out.sequences[:, inputs["input_ids"].shape[1] :]
        confidence, counts = sequence_confidence(out.logits, new_tokens, self.stop_ids)
        flat = [
            Candidate(
                text=self.tokenizer.decode(row[:n], skip_special_tokens=True),
                confidence=float(c),
                num_tokens=int(n),
            )
            for row, c, n in zip(new_tokens.tolist(), confidence.tolist(), counts.tolist(), strict=True)
        ]
        # generate returns the candidates of each prompt next to each other
        return [
            tuple(sorted(flat[j : j + num_candidates], key=lambda c: c.confidence, reverse=True))
            for j in range(0, len(flat), num_candidates)
        ]

    # Next-token probabilities (a model judge, training/judging) ----------------------------------

    def label_token_ids(self, labels: Sequence[str]) -> list[list[int]]:
        """For each label (a score "1".."5", a choice "A" / "B"), the vocabulary's tokens that read as it
        once whitespace is stripped ("4", " 4"): the model may write the label either way, as a server's
        top-logprobs list shows it either way. Cached per label set; the vocabulary is scanned once."""
        if not hasattr(self, "_vocab_texts"):
            self._vocab_texts = [self.tokenizer.decode([i]).strip() for i in range(len(self.tokenizer))]
        return [[i for i, text in enumerate(self._vocab_texts) if text == label] for label in labels]

    def next_token_log_probs(
        self, prompts: Sequence[str | Prompt], labels: Sequence[str], *, batch_size: int = 16
    ) -> list[list[float]]:
        """For each prompt, log p(next token reads as label) for each label (a log-sum over the label's
        tokens, `label_token_ids`; -inf for a label no token spells), from the raw logits of one forward
        pass per length-grouped, left-padded batch: the distribution `draft` samples its first token from.

        Positions count from each row's first real token, as `generate` counts them, so a prompt scores
        the same in a batch as alone."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        groups = self.label_token_ids(labels)
        encoded = [self._encode(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        results: list[list[float]] = [[] for _ in prompts]
        with torch.inference_mode(), self._adapter_context():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                inputs = self._padded([encoded[i] for i in batch])
                positions = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                logits = self.model(**inputs, position_ids=positions, logits_to_keep=1).logits[:, -1, :]
                logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
                for row, i in zip(logprobs, batch, strict=True):
                    results[i] = [
                        float(torch.logsumexp(row[ids], dim=0)) if ids else float("-inf") for ids in groups
                    ]
        return results
