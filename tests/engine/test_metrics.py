"""Evaluation metrics, Chinese included: values computed by hand, BLEU against sacrebleu itself."""

import pytest
import sacrebleu

from training.engine.metrics import bleu_tokenizer, evaluate, exact_match, rouge_l, token_f1, tokenize

ZH = "北京是中国的首都"


def test_tokenizer_keeps_chinese_characters_and_lowercases_words():
    assert tokenize(ZH) == list(ZH)
    assert tokenize("我的订单 Order-42！") == ["我", "的", "订", "单", "order", "42"]
    assert tokenize("，。！ ... ") == []


def test_identical_chinese_scores_one_on_every_metric():
    scores = evaluate([ZH, "请重启设备后再尝试连接。"], [ZH, "请重启设备后再尝试连接。"])

    assert scores["n"] == 2
    for metric in ("bleu", "rouge_l", "exact_match", "f1"):
        assert scores[metric] == pytest.approx(1.0), metric
        assert all(s[metric] == pytest.approx(1.0) for s in scores["per_sample"]), metric


def test_identical_short_answers_are_not_zeroed_by_bleu_4grams():
    # a one-word answer has no 4-grams; standard BLEU would call a perfect answer 0
    assert evaluate(["北京"], ["北京"])["bleu"] == pytest.approx(1.0)


def test_partial_chinese_overlap_by_hand():
    # prediction 北京是首都 (5 chars) inside reference 北京是中国的首都 (8 chars): LCS 5, P 1, R 5/8
    assert rouge_l("北京是首都", ZH) == pytest.approx(10 / 13)
    assert token_f1("北京是首都", ZH) == pytest.approx(10 / 13)
    # reversed: the same bag of characters (F1 unchanged) but a common subsequence of 1
    assert rouge_l("都首是京北", ZH) == pytest.approx(2 / 13)
    assert token_f1("都首是京北", ZH) == pytest.approx(10 / 13)


def test_partial_english_overlap_by_hand():
    # the cat sat on a mat / the cat is on the mat: LCS "the cat on mat" = 4 of 6 each side
    assert rouge_l("The cat sat on a mat", "the cat is on the mat") == pytest.approx(2 / 3)
    assert token_f1("The cat sat on a mat", "the cat is on the mat") == pytest.approx(2 / 3)
    # repeated words count once per occurrence in the reference: overlap 1, P 1/3, R 1/2
    assert token_f1("the the the", "the cat") == pytest.approx(0.4)
    assert rouge_l("the the the", "the cat") == pytest.approx(0.4)


def test_mixed_chinese_and_english_by_hand():
    # 订 单 order 42 已 发 货 / order 42 已 经 发 货 了: LCS "order 42 已 发 货" = 5 of 7 each side
    assert rouge_l("订单 Order 42 已发货", "Order 42 已经发货了") == pytest.approx(5 / 7)


def test_empty_prediction_scores_zero():
    scores = evaluate([""], [ZH])

    assert scores["per_sample"] == [{"bleu": 0.0, "rouge_l": 0.0, "exact_match": 0.0, "f1": 0.0}]
    assert scores["bleu"] == 0.0 and scores["rouge_l"] == 0.0 and scores["f1"] == 0.0


def test_exact_match_ignores_case_spaces_and_punctuation_only():
    assert exact_match("北京。", "北京") == 1.0
    assert exact_match("  Paris! ", "paris") == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0


def test_bleu_is_sacrebleu_corpus_bleu_with_the_matching_tokenizer():
    zh_pred = ["您的包裹正在配送中，预计明天送达。", "请提供订单号。"]
    zh_ref = ["您的包裹正在配送中，预计明天下午送达。", "请提供您的订单号，我来帮您查询。"]
    en_pred = ["Your refund has been processed today.", "Please restart the device now."]
    en_ref = [
        "Your refund has been processed and will arrive soon.",
        "Please restart the device and try again.",
    ]

    assert bleu_tokenizer(zh_pred + zh_ref) == "zh"
    assert bleu_tokenizer(en_pred + en_ref) == "13a"
    assert evaluate(zh_pred, zh_ref)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(zh_pred, [zh_ref], tokenize="zh").score / 100
    )
    assert evaluate(en_pred, en_ref)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(en_pred, [en_ref], tokenize="13a").score / 100
    )


def test_corpus_scores_are_means_of_the_samples():
    scores = evaluate([ZH, "the cat", ""], [ZH, "the cat sat", "x"])

    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["rouge_l"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert [s["exact_match"] for s in scores["per_sample"]] == [1.0, 0.0, 0.0]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        evaluate(["a"], ["a", "b"])
