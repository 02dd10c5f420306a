"""Where a customer wants a parcel sent: a small gazetteer of Chinese regions.

``find_region`` returns the region group a message names (a province, a well-known
city of it, or "港澳台"/"海外"), so that shipping answers can say "新疆加15元" or
"香港不发" for "发乌鲁木齐吗" / "寄到香港吗". Group names match the names used in
xiaoer.yml (shop.shipping.surcharge_regions / no_delivery).
"""

from __future__ import annotations

import re

# group -> words that name it (province first: it is what the customer reads back)
REGIONS: dict[str, tuple[str, ...]] = {
    "新疆": (
        "新疆",
        "乌鲁木齐",
        "喀什",
        "伊犁",
        "克拉玛依",
        "阿克苏",
        "库尔勒",
        "哈密",
        "和田",
        "吐鲁番",
        "石河子",
        "昌吉",
    ),
    "西藏": ("西藏", "拉萨", "日喀则", "林芝", "昌都", "那曲", "阿里地区"),
    "青海": ("青海", "西宁", "格尔木", "海东", "玉树", "果洛"),
    "港澳台": (
        "港澳台",
        "香港",
        "澳门",
        "台湾",
        "台北",
        "高雄",
        "九龙",
        "hk",
        "hongkong",
        "macau",
        "taiwan",
    ),
    "海外": (
        "海外",
        "国外",
        "境外",
        "外国",
        "出国",
        "美国",
        "加拿大",
        "英国",
        "法国",
        "德国",
        "意大利",
        "西班牙",
        "日本",
        "韩国",
        "新加坡",
        "马来西亚",
        "泰国",
        "越南",
        "菲律宾",
        "印尼",
        "澳大利亚",
        "澳洲",
        "新西兰",
        "俄罗斯",
        "迪拜",
        "欧洲",
        "美洲",
        "东南亚",
    ),
}

MAINLAND = (
    "北京",
    "天津",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "内蒙",
    "广西",
    "宁夏",
    "哈尔滨",
    "长春",
    "沈阳",
    "大连",
    "石家庄",
    "太原",
    "济南",
    "青岛",
    "郑州",
    "武汉",
    "长沙",
    "南京",
    "苏州",
    "无锡",
    "杭州",
    "宁波",
    "合肥",
    "福州",
    "厦门",
    "南昌",
    "广州",
    "深圳",
    "东莞",
    "佛山",
    "海口",
    "三亚",
    "成都",
    "贵阳",
    "昆明",
    "西安",
    "兰州",
    "银川",
    "呼和浩特",
    "南宁",
    "桂林",
)


def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(sorted(map(re.escape, words), key=len, reverse=True)), re.I)


_GROUPS = {group: _pattern(words) for group, words in REGIONS.items()}
_MAINLAND = _pattern(MAINLAND)


def find_region(text: str) -> tuple[str, str] | None:
    """(group, the word written) of the first special region named, else of a mainland
    place as ("内地", word), else None."""
    hits = [(m.start(), group, m.group(0)) for group, p in _GROUPS.items() if (m := p.search(text))]
    if hits:
        _, group, word = min(hits)
        return group, word
    m = _MAINLAND.search(text)
    return ("内地", m.group(0)) if m else None
