"""The tiny offline model: a real Hugging Face directory, a working tokenizer and chat template."""

from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from training.engine.tiny_model import build_tiny_model, default_corpus


def test_tiny_model_reloads_through_from_pretrained(tiny_model_dir):
    # given a freshly built tiny model directory
    # when it is loaded the way any Hugging Face model is
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    # then it is a small Llama with the tokenizer's special tokens wired in
    assert isinstance(model, LlamaForCausalLM)
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 10_000_000
    assert model.config.vocab_size == len(tokenizer)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in tiny_model_dir.iterdir()
    }
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.bos_token == "<|bos|>"
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_tokenizer_round_trips_english_and_chinese(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for text in ["Where is my order #4521?", "您的退款已经处理，预计五个工作日内到账。", "mixed 中英文 text"]:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == text
        assert tokenizer.unk_token_id not in ids


def test_chat_template_renders_turns_and_generation_prompt(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "订单到哪了？"},
        {"role": "assistant", "content": "On its way."},
        {"role": "user", "content": "Thanks"},
    ]

    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    assert rendered == (
        "<|bos|><|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n订单到哪了？<|im_end|>\n"
        "<|im_start|>assistant\nOn its way.<|im_end|>\n"
        "<|im_start|>user\nThanks<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    without_prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
    assert without_prompt.endswith("Thanks<|im_end|>\n")


def test_build_is_deterministic_for_a_seed(tmp_path):
    corpus = default_corpus()[:20]
    first = build_tiny_model(tmp_path / "a", corpus, seed=3)
    second = build_tiny_model(tmp_path / "b", corpus, seed=3)
    other_seed = build_tiny_model(tmp_path / "c", corpus, seed=4)

    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    weights = [load_file(d / "model.safetensors") for d in (first, second, other_seed)]
    assert all(weights[0][k].equal(weights[1][k]) for k in weights[0])
    assert not all(weights[0][k].equal(weights[2][k]) for k in weights[0])
