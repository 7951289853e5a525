"""Text similarity that is correct for Chinese as well as English: the CJK-aware tokenizer and ROUGE-L.

Word tokenizers that split on spaces or keep only [a-z0-9] turn a Chinese sentence into one token or
none, and score identical answers 0; here CJK text is split into characters (the usual unit for Chinese
ROUGE and F1) and other text into words. Review scores gold annotations with it; training's automatic
evaluation (training/engine/metrics.py) imports it from here, the lower layer.
"""

import re
import unicodedata
from collections.abc import Sequence

# Han ideographs (with extensions and compatibility forms), kana, CJK punctuation is not included:
# punctuation carries no content and is dropped like Latin punctuation.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_RE = re.compile(f"[{_CJK}]")
# One CJK character, or a run of letters/digits that are not CJK ("_" counts as punctuation).
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")


def has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


def tokenize(text: str) -> list[str]:
    """CJK characters one by one, other words lowercased; punctuation and spaces dropped.

    "我的订单 Order-42!" → ["我", "的", "订", "单", "order", "42"]. NFKC first, so full-width letters and
    digits ("ＡＢＣ１") equal their ASCII forms.
    """
    return _TOKEN_RE.findall(unicodedata.normalize("NFKC", text).casefold())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def f_measure(overlap: int, n_prediction: int, n_reference: int) -> float:
    if n_prediction == 0 and n_reference == 0:
        return 1.0  # nothing was expected and nothing was said
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_prediction, overlap / n_reference
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence of tokens, against both lengths."""
    p, r = tokenize(prediction), tokenize(reference)
    return f_measure(lcs_length(p, r), len(p), len(r))
