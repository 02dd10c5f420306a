from xiaoer.parsing import looks_like_order_id_attempt, parse_order_id
from xiaoer.text import normalize, to_simplified


def test_full_width_case_and_punctuation_are_normalised():
    norm = normalize("ＸＬ码还有吗？？？！！")
    assert norm.text == "xl码还有吗?!"


def test_traditional_becomes_simplified_with_same_length():
    assert to_simplified("我的訂單到哪裡了") == "我的订单到哪里了"
    assert normalize("運費險").text == "运费险"


def test_offsets_point_into_the_original_text():
    original = "好的！！！ＸＬ"
    norm = normalize(original)
    start = norm.text.index("xl")
    s, e = norm.span(start, start + 2)
    assert original[s:e] == "ＸＬ"


def test_empty_text():
    assert normalize("").text == ""


def test_order_id_forms_are_normalised_to_digits():
    assert parse_order_id("6938271045123400001") == "6938271045123400001"
    assert parse_order_id("单号 6938 2710 4512 3400 001") == "6938271045123400001"
    assert parse_order_id("6938-2710-4512-3400-002") == "6938271045123400002"
    assert parse_order_id("６９３８２７１０４５１２３４００００３") == "6938271045123400003"
    assert parse_order_id("1234567890123456") == "1234567890123456"  # 16 digits


def test_things_that_are_not_order_ids():
    assert parse_order_id("SF1234567890123") is None  # tracking number
    assert parse_order_id("13800000000") is None  # phone
    assert parse_order_id("12345678901234567890") is None  # 20 digits
    assert parse_order_id("") is None
    assert parse_order_id(None) is None


def test_order_id_attempts_are_recognised():
    assert looks_like_order_id_attempt("12345678")
    assert not looks_like_order_id_attempt("你好")
