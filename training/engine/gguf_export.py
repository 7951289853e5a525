"""Write a Hugging Face Llama directory with a byte-level BPE tokenizer as one GGUF file for llama.cpp.

Why it exists: llama.cpp's server (the `llama-cpp-python[server]` wheel) is the OpenAI-compatible
server the tests and `bench/draft_backends.py` run on CPU, and it reads GGUF only; the wheel ships no
converter from Hugging Face files. This is the part of llama.cpp's `convert_hf_to_gguf.py` that a
Llama model with a GPT-2-style tokenizer (the tiny model, and Llama-architecture models trained with a
byte-level BPE) needs, written with the `gguf` package (a dev dependency):

- metadata: architecture `llama`, context, widths, heads, RoPE base, RMS-norm epsilon, file type;
- the tokenizer as llama.cpp's `gpt2` model: every token in id order (added special tokens as
  CONTROL), the merges, the pre-tokenizer `gpt-2` (the GPT-2 split regex, which the `ByteLevel`
  pre-tokenizer with `use_regex` applies), bos / eos / pad ids, no automatic BOS (the tokenizer's
  post-processor adds none; the chat template writes it), and the chat template, so the server renders
  chat requests as transformers does;
- tensors renamed to llama.cpp's names (`gguf.get_tensor_name_map`), and q / k projection weights
  permuted from Hugging Face's rotate-half RoPE layout to the interleaved pairs llama.cpp's RoPE reads,
  exactly as `LlamaModel.permute` in `convert_hf_to_gguf.py` does. A tied output layer is left out:
  llama.cpp then reads the token embeddings as the output, as transformers does.

Weights are written as float32 by default (no rounding, so llama.cpp's greedy tokens can equal
transformers'; `tests/engine/test_gguf_export.py` checks that on the tiny model) or float16.
Anything else (another architecture, a SentencePiece tokenizer, MoE, RoPE scaling) is refused with
what is missing rather than written wrongly; use llama.cpp's own converter for those.

    python -m training.engine.gguf_export MODEL_DIR OUT.gguf [--f16]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


class GGUFExportError(ValueError):
    """The model directory is not one this converter writes correctly; the message says why."""


def _rope_theta(config: dict) -> float:
    # transformers 5 keeps RoPE settings under rope_parameters; older configs have rope_theta on top.
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = params.get("rope_type") or params.get("type") or "default"
    if rope_type not in ("default", None):
        raise GGUFExportError(f"RoPE type {rope_type!r} is not supported by this converter (only 'default').")
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def permute_qk(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """Hugging Face's q/k rows (rotate-half halves per head) in llama.cpp's interleaved order.

    The same reshape as `LlamaModel.permute` in llama.cpp's convert_hf_to_gguf.py: per head, rows
    [0, d/2) and [d/2, d) are interleaved pairwise."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _check_tokenizer(model_dir: Path) -> dict:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise GGUFExportError(f"{model_dir}: no tokenizer.json (a fast byte-level BPE tokenizer is needed).")
    spec = json.loads(path.read_text(encoding="utf-8"))
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    if model.get("type") != "BPE":
        raise GGUFExportError(f"{path}: tokenizer model {model.get('type')!r}; only BPE is supported.")
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True) or pre.get("add_prefix_space"):
        raise GGUFExportError(
            f"{path}: pre-tokenizer {pre!r}; only ByteLevel with the GPT-2 regex and no prefix space "
            "(what llama.cpp's 'gpt-2' pre-tokenizer does) is supported."
        )
    if spec.get("normalizer"):
        raise GGUFExportError(f"{path}: a normalizer ({spec['normalizer'].get('type')}) is not supported.")
    return spec


def _tokens(model_dir: Path, spec: dict, vocab_size: int):
    """Token texts and types in id order, the merges, and the tokenizer itself (for special ids)."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise GGUFExportError(
            f"{model_dir}: token ids reach {max(vocab.values())}, vocab_size is {vocab_size}."
        )
    reverse = {i: t for t, i in vocab.items()}
    added = {t.content: t.special for t in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    return tokens, types, merges, tokenizer


def _hf_tensors(model_dir: Path):
    from safetensors.numpy import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise GGUFExportError(
            f"{model_dir}: no .safetensors weights (save the model with safe_serialization)."
        )
    for file in files:
        yield from load_file(file).items()


def export_gguf(model_dir: str | Path, out: str | Path, *, f16: bool = False) -> Path:
    """Write `model_dir` (a Llama with a byte-level BPE tokenizer) as the GGUF file `out`."""
    import gguf

    model_dir, out = Path(model_dir), Path(out)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise GGUFExportError(
            f"{model_dir}: model_type {config.get('model_type')!r}; only 'llama' is supported."
        )
    if config.get("num_local_experts"):
        raise GGUFExportError(f"{model_dir}: mixture-of-experts models are not supported.")
    spec = _check_tokenizer(model_dir)
    n_head = config["num_attention_heads"]
    n_head_kv = config.get("num_key_value_heads", n_head)
    n_layer = config["num_hidden_layers"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    vocab_size = config["vocab_size"]

    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    writer = gguf.GGUFWriter(out, arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(model_dir.name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_vocab_size(vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)

    tokens, types, merges, tokenizer = _tokens(model_dir, spec, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for kind, token_id in (
        ("bos", tokenizer.bos_token_id),
        ("eos", tokenizer.eos_token_id),
        ("pad", tokenizer.pad_token_id),
    ):
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    # The tokenizer adds no BOS by itself (its post-processor has no special tokens); chat templates
    # write it. A tokenizer that adds one is refused above only if it differs; here it is read back.
    writer.add_add_bos_token(bool(tokenizer("x").input_ids[:1] == [tokenizer.bos_token_id]))
    writer.add_add_eos_token(False)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    float_type = np.float16 if f16 else np.float32
    for name, data in _hf_tensors(model_dir):
        if name.endswith("rotary_emb.inv_freq"):
            continue
        if name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue  # llama.cpp reads the token embeddings as the output when there is no output tensor
        data = data.astype(np.float32)
        if name.endswith("q_proj.weight"):
            data = permute_qk(data, n_head, n_head)
        elif name.endswith("k_proj.weight"):
            data = permute_qk(data, n_head, n_head_kv)
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise GGUFExportError(f"{model_dir}: tensor {name!r} has no llama.cpp name.")
        # Norms and other 1-D tensors stay float32, as llama.cpp expects.
        writer.add_tensor(new_name, data if data.ndim <= 1 else data.astype(float_type))

    out.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    f16 = "--f16" in args
    args = [a for a in args if a != "--f16"]
    if len(args) != 2:
        print("usage: python -m training.engine.gguf_export MODEL_DIR OUT.gguf [--f16]", file=sys.stderr)
        return 2
    try:
        print(export_gguf(args[0], args[1], f16=f16))
    except GGUFExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
