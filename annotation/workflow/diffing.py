"""Text diffs for the review timeline: diff-match-patch over words, cleaned up for people.

Words, not characters: a character diff leaves fragments such as "hou" → "fi" + "rs" that nobody reads
as a change. Chinese and Japanese have no spaces between words, so each of their characters counts as
a word, which is what a reader of those languages compares; the semantic clean-up then merges the
fragments into chunks a reviewer can read.
"""

import re

from diff_match_patch import diff_match_patch

_OPS = {0: "equal", 1: "insert", -1: "delete"}
# One CJK character, a run of word characters, a run of white space, or one other character.
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|\w+|\s+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def text_diff(before: str, after: str) -> list[tuple[str, str]]:
    """[(op, text)] turning `before` into `after`; op is equal, insert or delete."""
    # Each distinct token becomes one character, so diff-match-patch diffs tokens (as its own line
    # mode does with lines); code points from U+10000 up leave room for a million distinct tokens.
    vocabulary: dict[str, str] = {}
    words: list[str] = []

    def encoded(text: str) -> str:
        out = []
        for token in _tokens(text):
            if token not in vocabulary:
                vocabulary[token] = chr(0x10000 + len(words))
                words.append(token)
            out.append(vocabulary[token])
        return "".join(out)

    dmp = diff_match_patch()
    dmp.Diff_Timeout = 0.5  # bounded time on long texts; the result is still a valid diff
    diffs = dmp.diff_main(encoded(before), encoded(after), False)
    dmp.diff_cleanupSemantic(diffs)
    decoded = {code: word for word, code in vocabulary.items()}
    merged: list[tuple[str, str]] = []
    for op, text in diffs:
        part = "".join(decoded[ch] for ch in text)
        if merged and merged[-1][0] == _OPS[op]:
            merged[-1] = (merged[-1][0], merged[-1][1] + part)
        elif part:
            merged.append((_OPS[op], part))
    return merged


def edit_distance(before: str, after: str) -> int:
    """Levenshtein distance in characters: how much a person changed a model's draft."""
    dmp = diff_match_patch()
    dmp.Diff_Timeout = 0.5
    return dmp.diff_levenshtein(dmp.diff_main(before, after))
