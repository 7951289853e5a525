"""Sentence embeddings from a local Hugging Face model directory, for the semantic answer cache.

Mean pooling of the last hidden state over the real (unpadded) tokens, then L2 normalisation: what
sentence-transformers does for all-MiniLM-L6-v2 and its kin, so a sentence-transformers directory gives
the vectors it was trained for, and any other encoder or decoder directory (AutoModel loads the base of
a causal LM too) gives usable ones. Normalised vectors make cosine similarity a dot product.
"""

import inspect
import threading
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

MAX_TOKENS = 256  # questions are short; MiniLM was trained on 128-token inputs and accepts 512


class Embedder:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        if self.tokenizer.pad_token is None:  # decoders often have none; padding is masked out anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = AutoModel.from_pretrained(self.path).eval()
        self._accepts = set(
            inspect.signature(self.model.forward).parameters
        )  # a decoder takes no token_type_ids
        self._lock = threading.Lock()  # one forward pass at a time on a shared model

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """(len(texts), dimension) float32, each row of unit length; padding does not change a row."""
        rows = []
        with self._lock:
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size], padding=True, truncation=True, max_length=MAX_TOKENS,
                    return_tensors="pt",
                )  # fmt: skip
                hidden = self.model(
                    **{k: v for k, v in batch.items() if k in self._accepts}
                ).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
                rows.append(torch.nn.functional.normalize(pooled.float(), dim=-1).numpy())
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32, copy=False)


_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


def embedder_for(path: str) -> Embedder:
    """The process's Embedder for `path`, loaded once."""
    with _lock:
        if path not in _embedders:
            _embedders[path] = Embedder(path)
        return _embedders[path]
