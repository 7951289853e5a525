"""The GGUF converter: llama.cpp reads the tiny model as transformers does (tokens and greedy text)."""

import json
import shutil

import llama_cpp
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from training.engine.gguf_export import GGUFExportError, export_gguf, permute_qk
from training.engine.prompts import Prompt, render_prompt

TEXTS = [
    "Hello, thank you for contacting customer support.",
    "我的订单怎么还没到？",
    "  two spaces,\n\nnew lines, digits 12345 and 'quotes' it's",
    "<|im_start|>user\nhi<|im_end|>",
]
QUESTIONS = [
    "Where is my order?",
    "我的订单怎么还没到？",
    "How do I return a product I bought last week?",
    "hi",
]


@pytest.fixture(scope="module")
def gguf_path(tiny_model_dir, tmp_path_factory):
    return export_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def llama(gguf_path):
    model = llama_cpp.Llama(str(gguf_path), n_ctx=1024, logits_all=True, verbose=False, n_threads=1)
    yield model
    model.close()


def test_permute_interleaves_the_rotate_half_halves_of_each_head():
    # given one head of dimension 4 whose rows are numbered 0..3 (rotate-half pairs rows 0-2 and 1-3)
    rows = np.arange(8, dtype=np.float32).reshape(4, 2)

    # when permuted for llama.cpp
    permuted = permute_qk(rows, n_head=1)

    # then the pairs sit next to each other: rows 0, 2, 1, 3
    assert permuted[:, 0].tolist() == [0, 4, 2, 6]


def test_llama_cpp_tokenizes_as_transformers_does(tiny_model_dir, llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    for text in TEXTS:
        assert llama.tokenize(text.encode(), add_bos=False, special=True) == tokenizer(text).input_ids, text


def test_the_chat_template_travels_in_the_file(tiny_model_dir, llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    assert llama.metadata["tokenizer.chat_template"] == tokenizer.chat_template
    assert llama.token_eos() == tokenizer.eos_token_id
    assert llama.token_bos() == tokenizer.bos_token_id


def test_llama_cpp_greedy_tokens_equal_transformers(tiny_model_dir, llama):
    # given the tiny model in both runtimes and the chat-templated prompts drafting feeds
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()

    for question in QUESTIONS:
        text = render_prompt(tokenizer, Prompt(messages=[{"role": "user", "content": question}]))
        ids = tokenizer(text, add_special_tokens=False).input_ids

        # when each decodes greedily for 48 tokens (or to the end of the turn)
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]), max_new_tokens=48, do_sample=False,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        expected = out[0, len(ids) :].tolist()
        got = []
        llama.reset()
        for token in llama.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            got.append(token)
            if token == tokenizer.eos_token_id or len(got) == 48:
                break

        # then they choose the same tokens
        assert got == expected, question


def test_other_architectures_are_refused_naming_why(tiny_model_dir, tmp_path):
    copy = tmp_path / "not-llama"
    shutil.copytree(tiny_model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))

    with pytest.raises(GGUFExportError, match="model_type 'gpt2'; only 'llama'"):
        export_gguf(copy, tmp_path / "x.gguf")
