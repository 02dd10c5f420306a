from pathlib import Path

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


# --- robust reading of customer messages (normalize_message) ------------------------
import time  # noqa: E402

import pytest  # noqa: E402

from xiaoer.parsing import find_case_ids, parse_order_ids  # noqa: E402
from xiaoer.text import CANTONESE, normalize_message, normalize_message_text  # noqa: E402


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("佢冇收到货", "他没有收到货"),
        ("咩时候发货", "什么时候发货"),
        ("系唔系包邮", "是不是包邮"),
        ("呢个几多钱", "这个多少钱"),
        ("唔该", "谢谢"),
        ("有冇货", "有没有货"),
        ("收到嘅杯烂咗", "收到的杯烂了"),
        ("啲衫几时到", "些衫什么时候到"),
        ("拍咗三日仲未发", "拍了三日还没发"),
    ],
)
def test_cantonese_is_read_as_mandarin(written, read):
    assert normalize_message_text(written) == read


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("快地几天到", "快递几天到"),
        ("发标能开吗", "发票能开吗"),
        ("退宽到哪了", "退款到哪了"),
        ("尺吗准不准", "尺码准不准"),
        ("物留怎么不动", "物流怎么不动"),
        ("有优会券吗", "有优惠券吗"),
        ("是不是抱邮", "是不是包邮"),
        ("运废多少", "运费多少"),
        ("顺风能发吗", "顺丰能发吗"),
    ],
)
def test_homophone_typos_of_shop_terms_are_corrected(written, read):
    assert normalize_message_text(written) == read


@pytest.mark.parametrize(
    "correct",
    [
        "他发火了",
        "别取笑我",
        "要克服困难",
        "这个包有黑色吗",
        "发表评论",
        "你吃吗",
        "怎么还不发货",
        "签收后第8天还能退吗",
        "偏远地区发不发",
        "快点发货",
        "马上到",
        "订单6938271045123400002",
        "价格多少",
    ],
)
def test_correct_words_are_never_changed(correct):
    assert normalize_message_text(correct) == correct.lower()


TYPOS_IN_DATA = ("优会", "尺吗", "退宽", "快地", "物留", "发标")


def test_all_training_and_heldout_messages_keep_their_chinese_words():
    """The typo corrector changes no word of the 2000+ written messages of data/ and the
    held-out set (English words, repetitions and Cantonese are mapped on purpose)."""
    import glob
    import re as _re

    import yaml

    changed = []
    root = Path(__file__).resolve().parents[2]
    for path in [*glob.glob(str(root / "data/nlu/*.yml")), str(root / "tests/nlu/heldout.yml")]:
        for item in yaml.safe_load(Path(path).read_text(encoding="utf-8")).get("nlu", []):
            for line in (item.get("examples") or "").splitlines() if "intent" in item else []:
                text = _re.sub(r"\[([^\]]*)\][({][^)}]*[)}]", r"\1", line.lstrip("- ").strip())
                plain = normalize(text).text
                if _re.search(r"[a-z]|(.+)\1", plain) or any(k in plain for k in CANTONESE):
                    continue  # mapped on purpose
                if not _re.search(r"[\w]", plain) or any(t in plain for t in TYPOS_IN_DATA):
                    continue  # emoji-only, or typos written into the data on purpose
                if normalize_message_text(text) != plain:
                    changed.append((plain, normalize_message_text(text)))
    assert changed == [], changed


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("在吗在吗在吗", "在吗"),
        ("在吗？在吗？", "在吗?"),
        ("？？？？", "?"),
        ("哈哈哈哈哈哈", "哈哈"),
        ("急急急急", "急急"),
        ("谢谢谢谢", "谢谢"),
        ("好的好的", "好的"),
        ("看看", "看看"),
        ("6666666666666666", "6666666666666666"),  # digits are never squeezed
        ("零零零零", "零零零零"),
        ("一二一二", "一二一二"),
    ],
)
def test_repetition_is_squeezed(written, read):
    assert normalize_message_text(written) == read


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("🙏🙏", "谢谢"),
        ("👍", "好的"),
        ("👋", "你好"),
        ("😡😡😡", "太差了"),
        ("😂😂", "哈哈"),
        ("🐶", "🐶"),  # no meaning known: left alone
        ("好的🙏", "好的🙏"),  # only emoji-ONLY messages are read as words
    ],
)
def test_emoji_only_messages_become_words(written, read):
    assert normalize_message_text(written) == read


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("size guide pls", "尺码 guide 请"),
        ("refund几时到", "退款什么时候到"),
        ("price?", "价格?"),
        ("ok", "好"),
        ("invoice能开吗", "发票能开吗"),
        ("XL码有吗", "xl码有吗"),  # sizes are not words
        ("M码 how much", "m码 多少钱"),
        ("thx亲", "谢谢亲"),
    ],
)
def test_common_english_words(written, read):
    assert normalize_message_text(written) == read


def test_rewritten_text_maps_back_to_what_the_customer_wrote():
    original = "佢冇收到快地 6938271045123400002"
    norm = normalize_message(original)
    start = norm.text.index("6938")
    s, e = norm.span(start, start + 19)
    assert original[s:e] == "6938271045123400002"
    start = norm.text.index("快递")
    s, e = norm.span(start, start + 2)
    assert original[s:e] == "快地"
    start = norm.text.index("没有")
    s, e = norm.span(start, start + 2)
    assert original[s:e] == "冇"


def test_normalisation_is_cheap():
    messages = [f"佢冇收到快地{i}号 系唔系要等 在吗在吗 size pls 退宽呢" for i in range(500)]
    started = time.perf_counter()
    for m in messages:
        normalize_message(m)
    assert (time.perf_counter() - started) / len(messages) < 0.001


@pytest.mark.parametrize(
    ("written", "order_id"),
    [
        ("订单号：6938271045123400006！", "6938271045123400006"),
        ("（6938271045123400001）", "6938271045123400001"),
        ("单号【6938-2710-4512-3400-002】到哪了？", "6938271045123400002"),
        ("六九三八二七一零四五一二三四零零零零二", "6938271045123400002"),
        ("订单 六九三八 二七一零 四五一二 三四零零 零零三", "6938271045123400003"),
        ("陆玖叁捌贰柒壹零肆伍壹贰叁肆零零零零伍", "6938271045123400005"),
        ("６９３８２７１０４５１２３４００００３。", "6938271045123400003"),
    ],
)
def test_order_ids_in_punctuation_and_chinese_numerals(written, order_id):
    assert parse_order_id(written) == order_id


def test_several_order_ids_in_one_message_in_order():
    text = "6938271045123400004 和 6938271045123400002，还有六九三八二七一零四五一二三四零零零零一"
    assert parse_order_ids(text) == [
        "6938271045123400004",
        "6938271045123400002",
        "6938271045123400001",
    ]
    assert parse_order_ids("6938271045123400004 6938271045123400004") == ["6938271045123400004"]


def test_chinese_numbers_that_are_not_order_ids():
    assert parse_order_id("一二三四五六七八九") is None  # 9 numerals
    assert parse_order_id("我要一件两件三件") is None
    assert parse_order_id("一三九一二三四五六七八") is None  # a phone in numerals


def test_case_ids():
    assert find_case_ids(normalize("AS20261101 退款怎么样了").text) == [(0, 10, "AS20261101")]
    assert find_case_ids(normalize("售后单号as 20261105").text)[0][2] == "AS20261105"
    assert find_case_ids(normalize("HAS20261101").text) == []
    assert find_case_ids(normalize("AS12").text) == []
