from pathlib import Path

from xiaoer.text.normalize import normalize, to_simplified
from xiaoer.text.parsing import looks_like_order_id_attempt, parse_order_id


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

from xiaoer.text.normalize import CANTONESE, normalize_message, normalize_message_text  # noqa: E402
from xiaoer.text.parsing import find_case_ids, parse_order_ids  # noqa: E402


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
        ("size guide pls", "尺码表 请"),  # a phrase: the size chart
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


# --- pinyin typed in the wrong input mode, mixed English, net slang -----------------
@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("退kuan怎么还没到", "退款怎么还没到"),
        ("tui货", "退货"),
        ("我要tui款", "我要退款"),
        ("多shao钱", "多少钱"),
        ("这个duoshao钱", "这个多少钱"),
        ("duo shao", "多少"),
        ("bu要了", "不要了"),
        ("bu用了", "不用了"),
        ("xie xie", "谢谢"),
        ("xiexie亲", "谢谢亲"),
        ("谢xie", "谢谢"),
        ("kuai di用哪家", "快递用哪家"),
        ("kuaidi", "快递"),
        ("nihao", "你好"),
        ("ni hao", "你好"),
        ("zai ma", "在吗"),
        ("在ma", "在吗"),
        ("nihao zaima", "你好在吗"),
        ("快点fa货", "快点发货"),
        ("转ren工", "转人工"),
        ("有you惠吗", "有优惠吗"),
        ("尺ma偏大吗", "尺码偏大吗"),
        ("chi码怎么选", "尺码怎么选"),
        ("zaijian", "再见"),
        ("好de", "好的"),
    ],
)
def test_pinyin_typed_inside_chinese_words(written, read):
    assert normalize_message_text(written) == read


@pytest.mark.parametrize(
    "kept",
    [
        "XL码有吗",  # sizes
        "m码",
        "s码偏小吗",
        "xxl",
        "订单6938271045123400002",  # order numbers, case and tracking numbers
        "AS20261101 退款怎么样了",
        "SF1234567890123到哪了",
        "nike的鞋",  # brand-like tokens spell no lexicon word
        "lining跑鞋",
        "long",  # English words that are also pinyin, alone
        "man",
        "ma",
        "hao",
        "vx sunny_day_2019",  # WeChat ids: letters next to "_" or digits
        "zai_ma_123",
        "2333元的那个",  # a price, not laughter
        "880块",
        "13800138000",
    ],
)
def test_pinyin_step_leaves_sizes_numbers_and_english_alone(kept):
    assert normalize_message_text(kept) == normalize(kept).text


def test_pinyin_edits_map_back_to_what_the_customer_wrote():
    original = "我的退KUAN呢"
    norm = normalize_message(original)
    start = norm.text.index("退款")
    s, e = norm.span(start, start + 2)
    assert original[s:e] == "退KUAN"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("886", "拜拜"),
        ("88", "拜拜"),
        ("8888!", "拜拜"),
        ("hhhhh", "哈哈"),
        ("绷不住了hhh", "绷不住了哈哈"),
        ("2333333", "哈哈"),
        ("23333块", "23333块"),  # an amount
        ("hahaha", "哈哈"),
        ("886元", "886元"),  # an amount
        ("订单 8888", "订单 8888"),  # not the whole message
    ],
)
def test_net_slang_in_digits_and_letters(written, read):
    assert normalize_message_text(written) == read


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("ship asap", "发货 尽快"),
        ("ship to USA?", "发货 to 美国?"),
        ("order no. 6938271045123400002", "订单号. 6938271045123400002"),
        ("order number多少", "订单号多少"),
        ("return 7 days ok?", "退货 7 天 好?"),
        ("material是什么", "材质是什么"),
        ("fabric起球", "面料起球"),
        ("size chart有吗", "尺码表有吗"),
        ("call me", "打电话给我"),
        ("human please", "人工 请"),
        ("are you human", "你是真人吗"),  # a bot question, not a request for a human
        ("real person", "真人"),
        ("in stock吗", "有货吗"),
        ("byebye", "再见"),
        ("sunny_day_2019", "sunny_day_2019"),  # a WeChat id keeps its words
    ],
)
def test_mixed_in_english_phrases(written, read):
    assert normalize_message_text(written) == read


def _pinyin_or_slang_rewrites() -> list[str]:
    """Examples of data/ and the held-out set that the pinyin or slang step rewrites."""
    import glob
    import re as _re

    import yaml

    from xiaoer.text import normalize as t
    from xiaoer.text.pinyin_typing import pinyin_edits

    found = []
    root = Path(__file__).resolve().parents[2]
    for path in [*glob.glob(str(root / "data/nlu/*.yml")), str(root / "tests/nlu/heldout.yml")]:
        for item in yaml.safe_load(Path(path).read_text(encoding="utf-8")).get("nlu", []):
            for line in (item.get("examples") or "").splitlines() if "intent" in item else []:
                text = _re.sub(r"\[([^\]]*)\][({][^)}]*[)}]", r"\1", line.lstrip("- ").strip())
                norm = t.normalize(text)
                english = [
                    (m.start(), m.end(), t.ENGLISH[m.group(1)])
                    for m in t._ENGLISH_WORD.finditer(norm.text)
                ]
                plain = t._rewrite(norm, english).text
                if pinyin_edits(plain, t._pinyin_words()) or t._slang(plain):
                    found.append(text)
    return found


# Examples written in pinyin or slang on purpose (each is read as the word it spells).
PINYIN_IN_DATA = {
    "zai吗", "88", "886", "退kuan啥时候到", "我的tui款怎么还没动静", "退kuan进度帮我看看",
    "申请的退kuan呢", "我想tui货", "tui货怎么操作", "这个能tui货吗", "要tui货 怎么寄回去",
    "快点fa货", "啥时候fahuo啊", "赶紧fa货 等着用", "帮我查下kuai di到哪了", "有you惠券吗",
    "优hui能叠加吗", "这个duoshao钱", "多shao钱一双", "杯子duo shao", "尺ma怎么选",
    "chi码偏大还是偏小", "ren工客服", "用哪家kuai di", "发什么kuai di", "kuaidi是哪家的",
    "nihao", "ni hao", "zaima 亲", "8888", "zaijian", "baibai",
    "xiexie", "xie xie", "谢xie", "xiexie老板", "233333", "23333333333", "hhhhhh",
    "hhhhhhhhhhh", "hahaha", "bu用了", "buyong",
}  # fmt: skip


def test_pinyin_and_slang_steps_change_no_other_training_example():
    """No English word, size, id or number among the 2000+ examples of data/ and the
    held-out set is read as pinyin or slang: only the examples written so on purpose."""
    assert set(_pinyin_or_slang_rewrites()) == PINYIN_IN_DATA
