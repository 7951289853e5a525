"""The timeline's diffs compare words (each CJK character one word), so a change reads as whole words."""

from annotation.workflow.diffing import text_diff


def test_a_changed_word_is_shown_whole():
    assert text_diff(
        "A technician can check the line within two hours.", "A technician will check it today."
    ) == [
        ("equal", "A technician "),
        ("delete", "can"),
        ("insert", "will"),
        ("equal", " check "),
        ("delete", "the line within two hours"),
        ("insert", "it today"),
        ("equal", "."),
    ]


def test_chinese_is_compared_character_by_character():
    assert text_diff("我的路由器一直闪红灯。", "我的路由器一直闪绿灯。") == [
        ("equal", "我的路由器一直闪"),
        ("delete", "红"),
        ("insert", "绿"),
        ("equal", "灯。"),
    ]


def test_the_diff_rebuilds_both_texts():
    before, after = "Ships in 2 days.\n\nThanks!", "Ships within 3 days 🚚.\nThanks, 张伟!"
    diff = text_diff(before, after)
    assert "".join(text for op, text in diff if op != "insert") == before
    assert "".join(text for op, text in diff if op != "delete") == after
