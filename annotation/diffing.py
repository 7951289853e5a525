"""Text diffs for the review timeline: diff-match-patch at character level, cleaned up for people.

Character level works for Chinese (no spaces between words) as well as English; the semantic
clean-up then merges the fragments into word-like chunks a reviewer can read.
"""

from diff_match_patch import diff_match_patch

_OPS = {0: "equal", 1: "insert", -1: "delete"}


def text_diff(before: str, after: str) -> list[tuple[str, str]]:
    """[(op, text)] turning `before` into `after`; op is equal, insert or delete."""
    dmp = diff_match_patch()
    dmp.Diff_Timeout = 0.5  # bounded time on long texts; the result is still a valid diff
    diffs = dmp.diff_main(before, after)
    dmp.diff_cleanupSemantic(diffs)
    return [(_OPS[op], text) for op, text in diffs]


def edit_distance(before: str, after: str) -> int:
    """Levenshtein distance in characters: how much a person changed a model's draft."""
    dmp = diff_match_patch()
    dmp.Diff_Timeout = 0.5
    return dmp.diff_levenshtein(dmp.diff_main(before, after))
