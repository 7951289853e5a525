"""Redaction of personal data and compliance phrase flags."""

import pytest

from annotation.dataio.redaction import (
    CARD,
    EMAIL,
    cn_id_valid,
    compliance_flags,
    redact,
    redactors_named,
)


def test_card_number_passing_luhn_is_redacted():
    result = redact("卡号 4111 1111 1111 1111，谢谢")

    assert result.text == "卡号 [CARD]，谢谢"
    assert result.counts["card"] == 1


def test_card_number_with_dashes_is_redacted():
    assert redact("card 5555-5555-5555-4444 ok").text == "card [CARD] ok"


def test_order_number_failing_luhn_survives():
    text = "order 4111 1111 1111 1112 shipped"

    result = redact(text)

    assert result.text == text
    assert not result.redacted


def test_email_is_redacted():
    assert redact("联系 zhang.san+ops@example.com.cn 即可").text == "联系 [EMAIL] 即可"


def test_international_phone_is_redacted():
    assert redact("call +44 20 7946 0958 today").text == "call [PHONE] today"


def test_china_mobile_next_to_chinese_text_is_redacted():
    assert redact("电话13800138000谢谢").text == "电话[PHONE]谢谢"


def test_china_mobile_after_latin_prefix_is_redacted():
    assert redact("tel:13912345678").text == "tel:[PHONE]"


def test_valid_china_resident_id_is_redacted():
    result = redact("身份证 11010519491231002X 已核验")

    assert result.text == "身份证 [CN_ID] 已核验"
    assert result.counts["cn_id"] == 1


def test_china_resident_id_with_wrong_check_digit_survives():
    assert redact("编号 110105194912310021").text == "编号 110105194912310021"


@pytest.mark.parametrize(
    ("candidate", "valid"),
    [
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110105194912310021", False),
        ("1101051949123100", False),
    ],
)
def test_cn_id_check_character(candidate, valid):
    assert cn_id_valid(candidate) is valid


def test_only_the_chosen_redactors_run():
    result = redact("a@b.com 4111111111111111", redactors=[EMAIL])

    assert result.text == "[EMAIL] 4111111111111111"
    assert result.counts == {"email": 1}


def test_redactors_named_keeps_safe_order_and_rejects_unknown_names():
    assert redactors_named(["email", "card"]) == (CARD, EMAIL)
    with pytest.raises(ValueError, match="unknown redactors"):
        redactors_named(["ssn"])


def test_compliance_flags_find_chinese_phrases():
    flags = compliance_flags("本基金保证收益，且无风险。", ["保证收益", "无风险", "稳赚"])

    assert flags == ["保证收益", "无风险"]


def test_compliance_flags_ignore_case_and_full_width_latin():
    assert compliance_flags("This is ＲＩＳＫ-FREE", ["risk-free"]) == ["risk-free"]


def test_compliance_flags_return_nothing_for_clean_text():
    assert compliance_flags("市场有风险，投资需谨慎", ["保证收益", "无风险"]) == []
