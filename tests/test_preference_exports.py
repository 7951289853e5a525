"""Exports of judged pairs read back by their real consumers: `datasets.load_dataset`, TRL's
`is_conversational` / `maybe_apply_chat_template` with the tiny model's tokenizer, and LLaMA-Factory's
ranking readers (its converters' checks, as tests/dataio/test_exporters.py's llamafactory_read); only
decided pairs, redacted, and a pair the format cannot hold refused by name."""

import json

import datasets
import pytest
from transformers import AutoTokenizer
from trl.data_utils import is_conversational, maybe_apply_chat_template

from review.preference.judging import judgement_submit, ranking_submit
from review.preference.services import pair_register
from review.rating.services import response_create
from tests.dataio.test_exporters import llamafactory_read
from tests.factories import MembershipFactory, UserFactory
from tests.test_drafting_support import tiny_model_path

pytestmark = pytest.mark.django_db

SYSTEM = "你是一位礼貌的客服。"
TURNS = [
    {"role": "user", "content": "我的订单怎么还没到？"},
    {"role": "assistant", "content": "请提供您的订单号。"},
    {"role": "user", "content": "订单号是 A-1024"},
]
GOOD = "您的包裹正在配送中，预计明天送达。"
BAD = "不知道。"


@pytest.fixture
def judges(project):
    users = []
    for i in range(3):
        user = UserFactory(username=f"judge{i}")
        MembershipFactory(project=project, user=user, role="expert")
        users.append(user)
    return users


def judged_pair(project, admin, judges, votes, *, good=GOOD, bad=BAD, system=SYSTEM, messages=TURNS):
    """A pair of `good` (stored first) and `bad`, judged by one judge per vote ("A" = good as shown)."""
    a = response_create(
        project=project,
        actor=admin,
        system=system,
        messages=messages,
        text=good,
        origin="candidate",
        model="v2",
    )
    b = response_create(
        project=project,
        actor=admin,
        system=system,
        messages=messages,
        text=bad,
        origin="candidate",
        model="v1",
    )
    made = pair_register(project=project, response_a=a, response_b=b)
    for judge, vote in zip(judges, votes, strict=False):
        judgement_submit(pair_id=made.pk, rater=judge, choice=vote)
    return made


def download(api, people, project, tmp_path, fmt):
    answer = api(people["admin"]).get(f"/api/projects/{project.pk}/preference-export/?format={fmt}")
    assert answer.status_code == 200, answer.content
    path = tmp_path / f"{fmt}.jsonl"
    path.write_bytes(b"".join(answer.streaming_content))
    return answer, path


def load(tmp_path, path):
    return datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )


def llamafactory_ranking_read(entry: dict, row: dict) -> dict:
    """A sharegpt ranking row as LLaMA-Factory's SharegptDatasetConverter reads it: the conversation's
    turns alternate user|observation and assistant|function and end with the user (an odd count), chosen
    and rejected are turns from the assistant or function tag; answers the prompt and both responses."""
    assert entry["ranking"] is True
    columns, tags = entry["columns"], entry["tags"]
    for column in columns.values():
        assert column in row, f"the entry names column {column!r}, which the record lacks"
    names = {
        tags["user_tag"]: "user",
        tags["assistant_tag"]: "assistant",
        tags["observation_tag"]: "observation",
        tags["function_tag"]: "function",
    }
    accepted = ({tags["user_tag"], tags["observation_tag"]}, {tags["assistant_tag"], tags["function_tag"]})
    prompt = []
    for position, turn in enumerate(row[columns["messages"]]):
        assert turn[tags["role_tag"]] in accepted[position % 2], (
            f"LLaMA-Factory skips the row at turn {position + 1}"
        )
        prompt.append({"role": names[turn[tags["role_tag"]]], "content": turn[tags["content_tag"]]})
    assert len(prompt) % 2 == 1, (
        "LLaMA-Factory skips a ranking row whose conversation ends with the assistant"
    )
    response = []
    for key in ("chosen", "rejected"):
        turn = row[columns[key]]
        assert isinstance(turn, dict) and turn[tags["role_tag"]] in accepted[1]
        response.append({"role": names[turn[tags["role_tag"]]], "content": turn[tags["content_tag"]]})
    return {"prompt": prompt, "response": response, "system": row.get(columns.get("system"), "")}


def test_llamafactory_alpaca_ranking_is_read_with_its_entry(api, people, project, judges, tmp_path):
    judged_pair(project, people["admin"], judges, ["A", "A", "B"])

    answer, path = download(api, people, project, tmp_path, "llamafactory_alpaca")
    row = load(tmp_path, path)[0]
    info = json.loads(answer["X-Dataset-Info"])
    (entry,) = info.values()

    assert entry["ranking"] is True and entry["formatting"] == "alpaca"
    read = llamafactory_read(entry, row)
    assert read["prompt"] == TURNS[:2] + [{"role": "user", "content": TURNS[2]["content"]}]
    assert [r["content"] for r in read["response"]] == [GOOD, BAD]
    assert read["system"] == SYSTEM
    assert answer["X-Record-Count"] == "1"


def test_llamafactory_sharegpt_ranking_is_read_with_its_entry(api, people, project, judges, tmp_path):
    judged_pair(project, people["admin"], judges, ["B"])  # shown in stored order: B is the second, BAD

    _answer, path = download(api, people, project, tmp_path, "llamafactory_sharegpt")
    entry_answer = api(people["admin"]).get(
        f"/api/projects/{project.pk}/preference-export/?format=llamafactory_sharegpt&part=dataset_info"
    )
    (entry,) = entry_answer.json().values()
    read = llamafactory_ranking_read(entry, load(tmp_path, path)[0])

    assert [t["content"] for t in read["prompt"]] == [t["content"] for t in TURNS]
    assert [r["content"] for r in read["response"]] == [BAD, GOOD]
    assert read["system"] == SYSTEM


def test_trl_conversational_is_conversational_and_renders_through_the_chat_template(
    api, people, project, judges, tmp_path
):
    judged_pair(project, people["admin"], judges, ["A"])

    _answer, path = download(api, people, project, tmp_path, "trl_conversational")
    row = load(tmp_path, path)[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path())

    assert is_conversational(row)
    rendered = maybe_apply_chat_template(row, tokenizer)
    prompt = [{"role": "system", "content": SYSTEM}, *TURNS]
    whole = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": GOOD}], tokenize=False)
    assert rendered["prompt"] + rendered["chosen"] == whole
    assert rendered["chosen"].startswith(GOOD) and rendered["rejected"].startswith(BAD)
    assert rendered["prompt"] == tokenizer.apply_chat_template(
        prompt, tokenize=False, add_generation_prompt=True
    )


def test_trl_standard_holds_single_questions_and_refuses_a_conversation_by_name(
    api, people, project, judges, tmp_path
):
    made = judged_pair(project, people["admin"], judges, ["A"], system="", messages=[TURNS[0]])

    _answer, path = download(api, people, project, tmp_path, "trl")
    row = load(tmp_path, path)[0]
    assert not is_conversational(row)
    assert maybe_apply_chat_template(row, AutoTokenizer.from_pretrained(tiny_model_path())) == row
    assert row == {"prompt": TURNS[0]["content"], "chosen": GOOD, "rejected": BAD}

    other = judged_pair(project, people["admin"], judges, ["A"], good="Yes.", bad="No.")
    refused = api(people["admin"]).get(f"/api/projects/{project.pk}/preference-export/?format=trl")
    assert refused.status_code == 400
    assert f"pair {other.pk}" in refused.json()["error"]["message"]
    assert "trl_conversational" in refused.json()["error"]["message"]
    assert made.pk != other.pk


def test_only_decided_pairs_are_written_and_the_rest_are_counted(api, people, project, judges, tmp_path):
    judged_pair(project, people["admin"], judges, ["A", "A", "B"], good="Decided.", bad="Lost.")
    judged_pair(project, people["admin"], judges, ["tie", "tie", "A"], good="Tie 1.", bad="Tie 2.")
    judged_pair(project, people["admin"], judges, ["A", "B"], good="Split 1.", bad="Split 2.")
    judged_pair(project, people["admin"], judges, [], good="Unjudged 1.", bad="Unjudged 2.")

    answer, path = download(api, people, project, tmp_path, "trl_conversational")

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [("Decided.", "Lost.")]
    assert answer["X-Left-Out"] == "ties=1, split=1"


def test_a_ranking_makes_chosen_rejected_pairs_and_votes_on_the_same_responses_pool(
    api, people, project, judges, tmp_path
):
    from review.preference.services import rank_set_create

    texts = ["Best.", "Middle.", "Worst."]
    made = [
        response_create(project=project, actor=people["admin"], input="Q?", text=t, origin="candidate")
        for t in texts
    ]
    rank_set = rank_set_create(project=project, responses=made)
    ranking_submit(rank_set_id=rank_set.pk, rater=judges[0], order=[r.pk for r in made])

    _answer, path = download(api, people, project, tmp_path, "trl")

    pairs = {(r["chosen"], r["rejected"]) for r in map(json.loads, path.read_text().splitlines())}
    assert pairs == {("Best.", "Middle."), ("Best.", "Worst."), ("Middle.", "Worst.")}


def test_exports_are_redacted(api, people, project, judges, tmp_path):
    judged_pair(project, people["admin"], judges, ["A"], good="Write to li.lei@example.com today.")
    _answer, path = download(api, people, project, tmp_path, "trl_conversational")
    text = path.read_text()
    assert "li.lei@example.com" not in text


def test_an_unknown_format_is_400_naming_it(api, people, project):
    answer = api(people["admin"]).get(f"/api/projects/{project.pk}/preference-export/?format=csv")
    assert answer.status_code == 400 and answer.json()["error"]["message"].startswith("format")
