"""Drafting through the real generate path of the tiny model: batching, confidence, candidates, adapters."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.model_helpers import save_random_lora_adapter
from training.engine.device import pick_device, pick_dtype
from training.engine.inference import Drafter, generated_token_mask, sequence_confidence
from training.engine.prompts import Prompt

# Different token lengths, deliberately not sorted, so length grouping reorders them.
PROMPTS = [
    "How do I return a product I bought last week? It arrived broken and the box was wet.",
    "hi",
    "我的订单怎么还没到？",
    "Refund please",
    "您好，请问发票已经发送到我的邮箱了吗？我找不到。",
    "Can I change my delivery address?",
    "退货",
]
MAX_NEW = 10


def test_drafts_carry_text_confidence_and_token_count(drafter):
    drafts = drafter.draft(PROMPTS, max_new_tokens=MAX_NEW, batch_size=3)

    assert [d.prompt for d in drafts] == PROMPTS
    for d in drafts:
        assert 0.0 <= d.confidence <= 1.0
        assert 1 <= d.num_tokens <= MAX_NEW
        assert isinstance(d.text, str) and len(d.candidates) == 1


def test_batched_greedy_equals_one_prompt_at_a_time(drafter):
    # given prompts of very different lengths, left-padded together in length-grouped batches
    batched = drafter.draft(PROMPTS, max_new_tokens=MAX_NEW, batch_size=4)

    # when each is drafted alone (no padding at all)
    alone = [drafter.draft([p], max_new_tokens=MAX_NEW)[0] for p in PROMPTS]

    # then padding changed nothing: same text, same length, same confidence
    assert [d.text for d in batched] == [d.text for d in alone]
    assert [d.num_tokens for d in batched] == [d.num_tokens for d in alone]
    assert [d.confidence for d in batched] == pytest.approx([d.confidence for d in alone], abs=1e-4)


def test_output_follows_input_order_not_batch_order(drafter):
    forward = drafter.draft(PROMPTS, max_new_tokens=MAX_NEW, batch_size=2)
    backward = drafter.draft(PROMPTS[::-1], max_new_tokens=MAX_NEW, batch_size=2)

    assert [d.text for d in backward] == [d.text for d in forward][::-1]
    assert [d.prompt for d in backward] == PROMPTS[::-1]


def test_candidates_are_ranked_by_confidence(drafter):
    drafts = drafter.draft(PROMPTS[:3], max_new_tokens=MAX_NEW, temperature=1.0, num_candidates=4, seed=7)

    for d in drafts:
        confidences = [c.confidence for c in d.candidates]
        assert len(confidences) == 4
        assert confidences == sorted(confidences, reverse=True)
        assert d.confidence == confidences[0]
    again = drafter.draft(PROMPTS[:3], max_new_tokens=MAX_NEW, temperature=1.0, num_candidates=4, seed=7)
    assert [d.candidates for d in again] == [d.candidates for d in drafts]


@pytest.mark.parametrize(("num_candidates", "temperature"), [(0, 1.0), (6, 1.0), (2, 0.0)])
def test_invalid_candidate_requests_are_refused(drafter, num_candidates, temperature):
    with pytest.raises(ValueError):
        drafter.draft(["hi"], num_candidates=num_candidates, temperature=temperature)


def test_confidence_ignores_padding_after_the_stop_token():
    # given two rows over a 3-token vocabulary; row 0 stops (token 2) at step 1 and is then padded (0)
    stop, pad = 2, 0
    tokens = torch.tensor([[1, stop, pad, pad], [1, 1, 1, 1]])
    confident = torch.tensor([[0.0, 5.0, 0.0], [0.0, 0.0, 5.0]])  # p(1) high at step 0, p(2) at step 1
    unlikely = torch.tensor([[9.0, 0.0, 0.0], [9.0, 0.0, 0.0]])  # pad steps: the chosen tokens unlikely
    step_logits = [confident, confident.flip(1).roll(1, 1), unlikely, unlikely]

    confidence, counts = sequence_confidence(step_logits, tokens, [stop])

    assert counts.tolist() == [2, 4]
    p_step0 = torch.softmax(confident[0], 0)[1]
    p_step1 = torch.softmax(step_logits[1][0], 0)[stop]
    assert confidence[0].item() == pytest.approx(float((p_step0 * p_step1).sqrt()))
    assert 0.0 <= confidence[1].item() < confidence[0].item()
    assert generated_token_mask(tokens, [stop]).tolist() == [[True, True, False, False], [True] * 4]


def test_chat_template_is_used_when_the_tokenizer_has_one(tiny_model_dir):
    drafter = Drafter(tiny_model_dir, system_prompt="Be kind.", prompt_template="IGNORED {input}")

    assert drafter.uses_chat_template
    assert drafter.render("退货") == (
        "<|bos|><|im_start|>system\nBe kind.<|im_end|>\n"
        "<|im_start|>user\n退货<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_conversation_is_drafted_from_its_whole_history(drafter):
    # given a conversation (system, an earlier exchange, the question) and the question alone
    conversation = Prompt(
        system="Be kind.",
        messages=[
            {"role": "user", "content": "我的订单怎么还没到？"},
            {"role": "assistant", "content": "请提供您的订单号。"},
            {"role": "user", "content": "Order 7731."},
        ],
    )

    # when both are drafted in one batch
    with_history, alone = drafter.draft([conversation, "Order 7731."], max_new_tokens=MAX_NEW)

    # then the conversation's prompt carries every turn through the chat template, and its draft is
    # the one it gets when drafted by itself (padding beside a shorter prompt changed nothing)
    assert with_history.prompt == conversation
    assert drafter.render(conversation) == (
        "<|bos|><|im_start|>system\nBe kind.<|im_end|>\n"
        "<|im_start|>user\n我的订单怎么还没到？<|im_end|>\n<|im_start|>assistant\n请提供您的订单号。<|im_end|>\n"
        "<|im_start|>user\nOrder 7731.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert drafter.draft([conversation], max_new_tokens=MAX_NEW)[0].text == with_history.text
    assert alone.prompt == "Order 7731."


def test_plain_template_is_used_without_a_chat_template(tiny_model_dir, tmp_path):
    plain_dir = shutil.copytree(tiny_model_dir, tmp_path / "plain")
    (plain_dir / "chat_template.jinja").unlink()

    drafter = Drafter(plain_dir, prompt_template="Question: {input}\nAnswer:", device=torch.device("cpu"))

    assert not drafter.uses_chat_template
    assert drafter.render("Where is it?") == "Question: Where is it?\nAnswer:"
    assert drafter.draft(["Where is it?"], max_new_tokens=4)[0].num_tokens >= 1


def test_adapters_switch_without_reloading_the_base_model(tiny_model_dir, tmp_path):
    drafter = Drafter(tiny_model_dir, device=torch.device("cpu"))
    base_id = id(drafter.base_model)
    base = [d.text for d in drafter.draft(PROMPTS, max_new_tokens=MAX_NEW)]

    drafter.load_adapter("support", save_random_lora_adapter(tiny_model_dir, tmp_path / "a", seed=1))
    drafter.load_adapter("billing", save_random_lora_adapter(tiny_model_dir, tmp_path / "b", seed=2))
    assert drafter.active_adapter is None
    assert [d.text for d in drafter.draft(PROMPTS, max_new_tokens=MAX_NEW)] == base  # loading uses nothing

    drafter.use_adapter("support")
    support = [d.text for d in drafter.draft(PROMPTS, max_new_tokens=MAX_NEW)]
    drafter.use_adapter("billing")
    billing = [d.text for d in drafter.draft(PROMPTS, max_new_tokens=MAX_NEW)]
    drafter.use_adapter(None)
    restored = [d.text for d in drafter.draft(PROMPTS, max_new_tokens=MAX_NEW)]
    drafter.use_adapter("support")
    support_again = [d.text for d in drafter.draft(PROMPTS, max_new_tokens=MAX_NEW)]

    assert support != base and billing != base and billing != support
    assert restored == base
    assert support_again == support
    assert id(drafter.base_model) == base_id
    assert drafter.model.get_base_model() is drafter.base_model
    assert drafter.adapters == {"support", "billing"}


def test_unknown_adapter_is_refused(drafter):
    with pytest.raises(KeyError):
        drafter.use_adapter("nope")


def test_cpu_runs_in_float32_and_a_device_is_always_picked():
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_device().type in {"cuda", "mps", "cpu"}


def test_engine_imports_without_django():
    code = (
        "import sys, training.engine.inference, training.engine.tiny_model, training.engine.device; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
