"""Automatic evaluation of generated answers against references: BLEU, ROUGE-L, exact match, token F1.

Every metric is correct for Chinese as well as English. Word tokenizers that split on spaces or keep
only [a-z0-9] turn a Chinese sentence into one token or none, and score identical answers 0; here CJK
text is split into characters (the usual unit for Chinese ROUGE and F1) and other text into words.
"""

from collections import Counter
from collections.abc import Sequence

import sacrebleu

# The tokenizer and ROUGE-L live in review's math (a lower layer), which scores gold annotations too.
from review.math.text_similarity import f_measure as _f_measure
from review.math.text_similarity import has_cjk, rouge_l, tokenize

__all__ = [
    "has_cjk",
    "rouge_l",
    "tokenize",
    "token_f1",
    "exact_match",
    "bleu_tokenizer",
    "corpus_bleu",
    "evaluate",
]


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over the bag of tokens (order ignored), same tokens as ROUGE-L."""
    p, r = tokenize(prediction), tokenize(reference)
    return _f_measure(sum((Counter(p) & Counter(r)).values()), len(p), len(r))


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the two have the same tokens: case, spaces and punctuation do not count."""
    return float(tokenize(prediction) == tokenize(reference))


def bleu_tokenizer(texts: Sequence[str]) -> str:
    """sacrebleu's "zh" when any text has CJK, else its standard "13a".

    "zh" splits CJK characters and tokenizes the rest as "13a", so mixed Chinese/English answers are
    scored on Chinese characters and English words alike, and pure English scores exactly as "13a".
    "char" would split English words into letters (inflating scores); "flores200" needs a SentencePiece
    model download, which offline machines cannot do.
    """
    return "zh" if any(has_cjk(t) for t in texts) else "13a"


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU in [0, 1].

    Effective order: n-gram orders that no prediction is long enough to have are left out instead of
    making BLEU 0, so a set of short answers (a word, a city) still gets a score; on longer texts this is
    identical to standard BLEU.
    """
    tokenizer = bleu_tokenizer([*predictions, *references])
    score = sacrebleu.corpus_bleu(
        list(predictions), [list(references)], tokenize=tokenizer, use_effective_order=True
    )
    return min(1.0, score.score / 100)  # sacrebleu's float arithmetic can land a hair above 100


def evaluate(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus scores (all in [0, 1]) and one dict of scores per sample, in input order.

    {"bleu", "rouge_l", "exact_match", "f1", "n", "per_sample": [{"bleu", "rouge_l", "exact_match", "f1"}]}.
    ROUGE-L, exact match and F1 are means over samples; BLEU is corpus BLEU (its n-gram counts pooled
    over samples, as BLEU is defined), while each sample's own BLEU is sentence BLEU.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    tokenizer = bleu_tokenizer([*predictions, *references])
    per_sample = [
        {
            "bleu": min(1.0, sacrebleu.sentence_bleu(p, [r], tokenize=tokenizer).score / 100),
            "rouge_l": rouge_l(p, r),
            "exact_match": exact_match(p, r),
            "f1": token_f1(p, r),
        }
        for p, r in zip(predictions, references, strict=True)
    ]
    n = len(per_sample)

    def mean(key: str) -> float:
        return sum(s[key] for s in per_sample) / n if n else 0.0

    return {
        "bleu": corpus_bleu(predictions, references) if n else 0.0,
        "rouge_l": mean("rouge_l"),
        "exact_match": mean("exact_match"),
        "f1": mean("f1"),
        "n": n,
        "per_sample": per_sample,
    }
