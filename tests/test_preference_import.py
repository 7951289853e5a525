"""Imported pairs: LLaMA-Factory ranking (alpaca, sharegpt) and TRL preference (standard, conversational,
implicit prompt) files become pairs to judge; every bad record is named by line and key, nothing is
written unless the whole file reads, and no key is dropped."""

import io
import json

import pytest

from review.models import Pair, Response

pytestmark = pytest.mark.django_db

ALPACA = {
    "instruction": "Translate",
    "input": "你好",
    "system": "You translate.",
    "history": [["Hi", "Hello"]],
    "chosen": "Hello",
    "rejected": "Goodbye",
    "category": "translation",
}
SHAREGPT = {
    "conversations": [
        {"from": "human", "value": "2+2?"},
        {"from": "gpt", "value": "Let me see."},
        {"from": "human", "value": "Well?"},
    ],
    "system": "Be brief.",
    "chosen": {"from": "gpt", "value": "4"},
    "rejected": {"from": "gpt", "value": "5"},
    "id": "q-17",
}
TRL = {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon", "score_chosen": 9.0}
TRL_CONVERSATIONAL = {
    "prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Is it raining?"}],
    "chosen": [{"role": "assistant", "content": "Yes, take an umbrella."}],
    "rejected": [{"role": "assistant", "content": "Look outside."}],
}
TRL_IMPLICIT = {
    "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "What."}],
}


def upload(api, user, project, records, name="pairs.jsonl", **extra):
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    if name.endswith(".json"):
        body = json.dumps(records, ensure_ascii=False).encode()
    data = {"file": io.BytesIO(body), **extra}
    data["file"].name = name
    return api(user).post(f"/api/projects/{project.pk}/pairs/import/", data, format="multipart")


def chosen_and_rejected(pair):
    chosen = pair.response_a if pair.prior == "a" else pair.response_b
    rejected = pair.response_b if pair.prior == "a" else pair.response_a
    return chosen, rejected


@pytest.mark.parametrize(
    "record, system, messages, chosen, rejected, metadata",
    [
        (
            ALPACA,
            "You translate.",
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Translate\n你好"},
            ],
            "Hello",
            "Goodbye",
            {"category": "translation"},
        ),
        (
            SHAREGPT,
            "Be brief.",
            [
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "Let me see."},
                {"role": "user", "content": "Well?"},
            ],
            "4",
            "5",
            {"id": "q-17"},
        ),
        (
            TRL,
            "",
            [{"role": "user", "content": "Capital of France?"}],
            "Paris",
            "Lyon",
            {"score_chosen": 9.0},
        ),
        (
            TRL_CONVERSATIONAL,
            "Be kind.",
            [{"role": "user", "content": "Is it raining?"}],
            "Yes, take an umbrella.",
            "Look outside.",
            {},
        ),
        (TRL_IMPLICIT, "", [{"role": "user", "content": "Hi"}], "Hello! How can I help?", "What.", {}),
    ],
    ids=["llamafactory_alpaca", "llamafactory_sharegpt", "trl", "trl_conversational", "trl_implicit_prompt"],
)
def test_each_format_becomes_a_pair_with_its_conversation_and_every_key(
    api, people, project, record, system, messages, chosen, rejected, metadata
):
    answer = upload(api, people["admin"], project, [record])

    assert answer.status_code == 201, answer.json()
    assert answer.json()["pairs_created"] == 1
    pair = Pair.objects.get()
    got_chosen, got_rejected = chosen_and_rejected(pair)
    assert (got_chosen.text, got_rejected.text) == (chosen, rejected)
    assert got_chosen.system == system and got_chosen.messages == messages
    assert got_rejected.messages == messages
    assert (pair.source, pair.metadata) == ("imported", metadata)
    assert got_chosen.origin == "external" and pair.judgements.count() == 0


def test_a_json_array_of_mixed_formats_reads_each_record_by_its_shape(api, people, project):
    answer = upload(api, people["admin"], project, [TRL, SHAREGPT, ALPACA], name="pairs.json")
    assert answer.status_code == 201 and answer.json()["pairs_created"] == 3
    assert Response.objects.count() == 6


def test_the_stored_order_says_nothing_about_which_was_chosen(api, people, project):
    upload(api, people["admin"], project, [TRL] * 60)
    priors = list(Pair.objects.values_list("prior", flat=True))
    assert set(priors) == {"a", "b"}


@pytest.mark.parametrize(
    "record, message",
    [
        ({**TRL, "chosen": 5}, "line 2: chosen: expected text, found a number"),
        ({"prompt": "Q", "chosen": "c"}, "line 2: rejected: is missing"),
        ({**TRL, "rejected": "   "}, "line 2: rejected: is empty"),
        (
            {**SHAREGPT, "chosen": {"from": "human", "value": "4"}},
            "line 2: chosen: the turn must be from gpt",
        ),
        (
            {**SHAREGPT, "conversations": SHAREGPT["conversations"][:2]},
            "line 2: conversations: must end with the user (or tool) turn",
        ),
        (
            {**SHAREGPT, "conversations": [{"from": "robot", "value": "x"}]},
            "line 2: conversations: turn 1: unknown role",
        ),
        ({**ALPACA, "history": [["only one"]]}, "line 2: history: entry 1 must be a [user, assistant] pair"),
        (
            {
                **TRL_CONVERSATIONAL,
                "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
            },
            "line 2: chosen: expected one assistant turn, found 2 turns",
        ),
        ({"question": "Q", "answer": "A"}, "line 2: not a preference record"),
        ([1, 2], "line 2: a record must be an object"),
    ],
)
def test_a_bad_record_fails_the_import_naming_line_and_key_and_nothing_is_written(
    api, people, project, record, message
):
    answer = upload(api, people["admin"], project, [TRL, record, TRL])

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_file"
    assert message in error["message"]
    assert error["details"]["total_errors"] == 1 and error["details"]["errors"][0]["line"] == 2
    assert not Pair.objects.exists() and not Response.objects.exists()


def test_malformed_json_names_its_line(api, people, project):
    data = {"file": io.BytesIO(json.dumps(TRL).encode() + b"\n{oops\n")}
    data["file"].name = "pairs.jsonl"
    answer = api(people["admin"]).post(f"/api/projects/{project.pk}/pairs/import/", data, format="multipart")
    assert answer.status_code == 400
    assert "line 2: malformed JSON" in answer.json()["error"]["message"]


def test_every_bad_record_is_listed(api, people, project):
    answer = upload(api, people["admin"], project, [{"prompt": "q"}] * 3)
    assert [e["line"] for e in answer.json()["error"]["details"]["errors"]] == [1, 2, 3]


def test_a_format_given_is_held_to(api, people, project):
    answer = upload(api, people["admin"], project, [TRL], format="llamafactory_alpaca")
    assert answer.status_code == 400
    assert "line 1: instruction: is missing" in answer.json()["error"]["message"]


def test_a_file_over_the_size_limit_is_413(api, people, project, settings):
    settings.IMPORT_MAX_FILE_BYTES = 100
    answer = upload(api, people["admin"], project, [TRL] * 10)
    assert answer.status_code == 413


@pytest.mark.parametrize("who, status", [("admin", 201), ("expert", 403), ("outsider", 404)])
def test_only_admins_import_pairs(api, people, project, who, status):
    assert upload(api, people[who], project, [TRL]).status_code == status


def test_imported_pairs_are_judged_blind_through_the_queue(api, people, project):
    from tests.test_preference_support import next_pair

    upload(api, people["admin"], project, [TRL])
    task = next_pair(api, people["expert"], project).json()
    assert {task["A"]["text"], task["B"]["text"]} == {"Paris", "Lyon"}
    assert "prior" not in task
