"""Training examples: the same prompt as inference, loss on the answer only, truncation, batching, split."""

import pytest
import torch
from transformers import AutoTokenizer

from training.engine.data import (
    IGNORE_INDEX,
    Example,
    collate,
    encode_sample,
    length_grouped_batches,
    render_prompt,
    split_for,
)
from training.engine.inference import Drafter
from training.engine.prompts import Prompt


@pytest.fixture(scope="module")
def small_drafter(small_model_dir):
    return Drafter(small_model_dir, device=torch.device("cpu"))


@pytest.fixture
def tokenizer(small_model_dir):
    return AutoTokenizer.from_pretrained(small_model_dir)


@pytest.mark.parametrize("system", [None, "You are a polite support agent."])
def test_training_prompt_is_the_inference_prompt_with_a_chat_template(small_drafter, system):
    small_drafter.system_prompt = system
    try:
        # given a sample as the trainer sees it
        sample = {"input": "我的订单怎么还没到？", "output": "正在配送中。", "context": system}

        # when it is encoded for training
        example = encode_sample(small_drafter.tokenizer, sample, max_seq_len=512)

        # then the text and the tokens before the answer are exactly what Drafter feeds at inference
        assert render_prompt(small_drafter.tokenizer, sample["input"], system=system) == small_drafter.render(
            sample["input"]
        )
        prompt_ids = small_drafter._encode(sample["input"])
        assert example.input_ids[: len(prompt_ids)] == prompt_ids
        assert example.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    finally:
        small_drafter.system_prompt = None


def test_training_prompt_is_the_inference_prompt_without_a_chat_template(small_drafter):
    template = "Question: {input}\nAnswer:"
    saved = small_drafter.tokenizer.chat_template
    small_drafter.tokenizer.chat_template = None
    small_drafter.prompt_template = template
    try:
        example = encode_sample(
            small_drafter.tokenizer,
            {"input": "Refund please", "output": " Done."},
            max_seq_len=512,
            prompt_template=template,
        )
        prompt_ids = small_drafter._encode("Refund please")

        assert render_prompt(small_drafter.tokenizer, "Refund please", prompt_template=template) == (
            small_drafter.render("Refund please")
        )
        assert example.input_ids[: len(prompt_ids)] == prompt_ids
        # the plain answer gets the eos appended, so the model learns to stop there too
        assert example.input_ids[-1] == small_drafter.tokenizer.eos_token_id
    finally:
        small_drafter.tokenizer.chat_template = saved
        small_drafter.prompt_template = "{input}"


def test_labels_cover_the_answer_and_its_end_of_turn_only(tokenizer):
    example = encode_sample(
        tokenizer, {"input": "Where is my order?", "output": "On its way."}, max_seq_len=512
    )

    labelled = [t for t in example.labels if t != IGNORE_INDEX]
    n_prompt = len(example.labels) - len(labelled)
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labelled == example.input_ids[n_prompt:]
    assert tokenizer.decode(labelled) == "On its way.<|im_end|>"
    assert labelled[-1] == tokenizer.eos_token_id
    assert not example.truncated


def test_truncation_keeps_the_end_of_the_prompt_and_the_start_of_the_answer(tokenizer):
    # given a prompt and an answer each longer than the window
    long_input = "first words " + "please help me " * 40 + "LAST"
    long_output = "Beginning " + "of the answer " * 40
    full = encode_sample(tokenizer, {"input": long_input, "output": long_output}, max_seq_len=10_000)

    # when cut to 32 tokens
    example = encode_sample(tokenizer, {"input": long_input, "output": long_output}, max_seq_len=32)

    # then the window is full, half of it prompt; the prompt ends as before (question end + assistant
    # header) and the answer starts as before
    assert len(example) == 32 and example.truncated
    n_prompt = example.labels.count(IGNORE_INDEX)
    full_prompt = full.labels.count(IGNORE_INDEX)
    assert n_prompt == 16
    assert example.input_ids[:n_prompt] == full.input_ids[full_prompt - 16 : full_prompt]
    assert example.input_ids[n_prompt:] == full.input_ids[full_prompt : full_prompt + 16]


def test_short_prompt_leaves_the_rest_of_the_window_to_the_answer(tokenizer):
    example = encode_sample(tokenizer, {"input": "hi", "output": "hello " * 50}, max_seq_len=64)
    n_prompt = example.labels.count(IGNORE_INDEX)

    assert len(example) == 64 and example.truncated
    untruncated = encode_sample(tokenizer, {"input": "hi", "output": ""}, max_seq_len=99)
    assert n_prompt == untruncated.labels.count(IGNORE_INDEX)
    assert example.input_ids[:n_prompt] == untruncated.input_ids[:n_prompt]


def test_length_grouped_batches_cover_every_sample_once_and_repeat_per_seed_and_epoch():
    lengths = [(i * 37) % 101 + 1 for i in range(500)]

    batches = length_grouped_batches(lengths, 8, seed=3, epoch=0, megabatch_size=4)

    assert sorted(i for b in batches for i in b) == list(range(500))
    assert batches == length_grouped_batches(lengths, 8, seed=3, epoch=0, megabatch_size=4)
    assert batches != length_grouped_batches(lengths, 8, seed=3, epoch=1, megabatch_size=4)


def test_length_grouping_pads_far_less_than_random_batches():
    lengths = [(i * 37) % 101 + 1 for i in range(512)]

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    grouped = length_grouped_batches(lengths, 8, seed=0, epoch=0)
    unsorted = length_grouped_batches(
        lengths, 8, seed=0, epoch=0, megabatch_size=1
    )  # sort within a batch only

    assert padding(grouped) < padding(unsorted) / 10


def test_collate_pads_on_the_right_without_labels_or_attention():
    a = Example(input_ids=[5, 6, 7], labels=[IGNORE_INDEX, 6, 7])
    b = Example(input_ids=[5, 8], labels=[IGNORE_INDEX, 8])

    batch = collate([a, b], pad_token_id=0)

    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 8, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX, 8, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_split_depends_on_the_id_alone_and_honours_the_fraction():
    ids = [f"item-{i}" for i in range(5000)]

    splits = [split_for(i, 0.2) for i in ids]

    # the same id always lands on the same side, whatever else is in the data set
    assert splits[:100] == [split_for(i, 0.2) for i in reversed(ids[:100])][::-1]
    assert 0.18 < splits.count("eval") / len(ids) < 0.22
    # integer ids hash like their string form, so a database pk or its str give the same split
    assert split_for(42, 0.3) == split_for("42", 0.3)
    assert {split_for(i, 0.0) for i in ids} == {"train"}
    assert {split_for(i, 1.0) for i in ids} == {"eval"}


def test_split_is_fixed_across_processes_and_versions():
    # sha256, not Python's salted hash(): these values may never change, or eval sets would drift
    assert [split_for(i, 0.5) for i in ("a", "b", "c", "d", 1, 2)] == [
        "train",
        "eval",
        "eval",
        "eval",
        "eval",
        "train",
    ]


# --- conversations ---------------------------------------------------------------------------------

# Three exchanges: two earlier ones (context) and the reply to the last question.
CONVERSATION = [
    {"role": "user", "content": "我的订单怎么还没到？"},
    {"role": "assistant", "content": "请提供您的订单号。"},
    {"role": "user", "content": "Order 7731, placed on Monday."},
    {"role": "assistant", "content": "It left the warehouse today."},
    {"role": "user", "content": "When will it arrive?"},
]
REPLY = "Tomorrow afternoon."


def labelled_runs(tokenizer, example) -> list[str]:
    """The labelled tokens, decoded run by run (a run: consecutive labelled positions)."""
    runs, current = [], []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


@pytest.mark.parametrize(
    ("mask_history", "trained"),
    [
        (True, [f"{REPLY}<|im_end|>"]),
        (
            False,
            ["请提供您的订单号。<|im_end|>", "It left the warehouse today.<|im_end|>", f"{REPLY}<|im_end|>"],
        ),
    ],
)
def test_labels_fall_on_the_reply_or_on_every_assistant_turn(tokenizer, mask_history, trained):
    # given a three-exchange conversation with a system prompt
    sample = {"system": "Be brief.", "messages": CONVERSATION, "output": REPLY}

    # when it is encoded with mask_history on (the reply only) or off (every assistant turn)
    example = encode_sample(tokenizer, sample, max_seq_len=512, mask_history=mask_history)

    # then exactly the assistant texts are labelled, each with its end-of-turn token, nothing else
    assert labelled_runs(tokenizer, example) == trained
    assert not example.truncated


def test_a_conversation_trains_on_the_prompt_drafting_feeds(small_drafter):
    # given a conversation with tools, as a sample and as the drafter's prompt (the version's system
    # prompt standing in, since the conversation has none of its own)
    tools = [{"type": "function", "function": {"name": "track", "parameters": {"type": "object"}}}]
    sample = {"messages": CONVERSATION, "tools": tools, "output": REPLY}
    small_drafter.system_prompt = "You are a polite support agent."
    try:
        # when the sample is encoded for training with the same system prompt
        example = encode_sample(
            small_drafter.tokenizer, sample, max_seq_len=512, system_prompt=small_drafter.system_prompt
        )

        # then the text and tokens before the reply are what Drafter feeds for the conversation
        rendered = small_drafter.render(Prompt.of(sample))
        assert render_prompt(small_drafter.tokenizer, sample, system=small_drafter.system_prompt) == rendered
        assert rendered.startswith("<|bos|><|im_start|>system\nYou are a polite support agent.<|im_end|>\n")
        assert "<|im_start|>assistant\nIt left the warehouse today.<|im_end|>\n" in rendered
        assert rendered.endswith("<|im_start|>user\nWhen will it arrive?<|im_end|>\n<|im_start|>assistant\n")
        prompt_ids = small_drafter._encode(Prompt.of(sample))
        assert example.input_ids[: len(prompt_ids)] == prompt_ids
        assert labelled_runs(small_drafter.tokenizer, example) == [f"{REPLY}<|im_end|>"]
    finally:
        small_drafter.system_prompt = None


def test_without_a_chat_template_the_turns_are_written_plainly(small_drafter):
    # given a model with no chat template and a plain prompt template
    template = "Q: {input}\nA:"
    saved = small_drafter.tokenizer.chat_template
    small_drafter.tokenizer.chat_template = None
    small_drafter.prompt_template = template
    try:
        sample = {"system": "Be brief.", "messages": CONVERSATION, "output": REPLY}

        # when the conversation is rendered and encoded with every assistant turn trained
        rendered = small_drafter.render(Prompt.of(sample))
        example = encode_sample(
            small_drafter.tokenizer, sample, max_seq_len=512, prompt_template=template, mask_history=False
        )

        # then the documented plain shape: system, then each user turn in the template, each assistant
        # turn ended by the eos token; and the trainer's prompt tokens are the drafter's
        assert rendered == (
            "Be brief.\n\nQ: 我的订单怎么还没到？\nA:请提供您的订单号。<|im_end|>"
            "Q: Order 7731, placed on Monday.\nA:It left the warehouse today.<|im_end|>"
            "Q: When will it arrive?\nA:"
        )
        prompt_ids = small_drafter._encode(Prompt.of(sample))
        assert example.input_ids[: len(prompt_ids)] == prompt_ids
        assert labelled_runs(small_drafter.tokenizer, example) == [
            "请提供您的订单号。<|im_end|>",
            "It left the warehouse today.<|im_end|>",
            f"{REPLY}<|im_end|>",
        ]
    finally:
        small_drafter.tokenizer.chat_template = saved
        small_drafter.prompt_template = "{input}"


def test_truncation_drops_the_earliest_whole_turns(tokenizer):
    # given a long conversation whose last question and reply fit the window, but not everything before
    long = [
        {"role": "user", "content": "first question " * 20},
        {"role": "assistant", "content": "first answer " * 20},
        *CONVERSATION[2:],
    ]
    sample = {"messages": long, "output": REPLY}
    full = encode_sample(tokenizer, sample, max_seq_len=10_000, mask_history=False)
    window = len(full) - 20

    # when it is cut to a window 20 tokens short, training every assistant turn
    example = encode_sample(tokenizer, sample, max_seq_len=window, mask_history=False)

    # then the first exchange is gone whole: the kept prompt starts at the beginning of the next turn,
    # and the kept assistant turns are trained entire
    assert example.truncated and len(example) <= window
    kept = tokenizer.decode(example.input_ids)
    assert kept.startswith("<|im_start|>user\nOrder 7731") and "first" not in kept
    assert labelled_runs(tokenizer, example) == [
        "It left the warehouse today.<|im_end|>",
        f"{REPLY}<|im_end|>",
    ]


def test_a_template_that_rewrites_earlier_assistant_turns_cannot_train_them(tokenizer):
    # given a template that writes earlier assistant turns differently from the last one (as templates
    # that strip reasoning from earlier turns do)
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' and not loop.last %}{{ m['content'] | upper }}"
        "{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    sample = {"messages": CONVERSATION, "output": REPLY}

    # then training the reply only still works, and training every assistant turn is refused by turn
    assert labelled_runs(tokenizer, encode_sample(tokenizer, sample, max_seq_len=512)) == [
        f"{REPLY}<|im_end|>"
    ]
    with pytest.raises(ValueError, match="turn 4: .*mask_history on"):
        encode_sample(tokenizer, sample, max_seq_len=512, mask_history=False)


def test_tool_call_arguments_reach_the_template_as_an_object(tokenizer):
    # given a template that writes tool calls as JSON (as most tool-calling templates do)
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
        "{% for call in m.get('tool_calls', []) %}{{ call['function'] | tojson }}{% endfor %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    call = {"type": "function", "function": {"name": "track", "arguments": '{"order": "7731"}'}}
    messages = [
        {"role": "user", "content": "Where is order 7731?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "c1"},
    ]

    rendered = render_prompt(tokenizer, Prompt(messages=messages))

    # then the arguments are written once as an object, not as a quoted JSON string
    assert '"arguments": {"order": "7731"}' in rendered
    assert '<|im_start|>tool\n{"status": "shipped"}<|im_end|>' in rendered
