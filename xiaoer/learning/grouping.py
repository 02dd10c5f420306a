"""Grouping the inbox by similarity, and the intents suggested for a group.

TF-IDF (scikit-learn, already a Rasa dependency) over each message's pkuseg content
words plus their characters and bigrams (short customer messages share few whole
words), cosine
similarity, then a greedy single pass: items, most frequent first, join the first group
whose centroid is at least ``threshold`` similar, else start one. Nothing is downloaded;
it runs in the console's process in milliseconds for a few hundred items.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from xiaoer.learning.inbox import InboxItem

DEFAULT_THRESHOLD = 0.3
# function words that make unrelated questions look alike ("…吗", "可以…", "怎么…")
STOPWORDS = frozenset(
    "吗 呢 的 了 啊 呀 吧 哦 嘛 么 我 你 他 她 你们 我们 可以 能 能不能 有 有没有 在 是 是不是"
    " 怎么 怎么样 什么 哪里 哪 这个 那个 这 那 会 要 想 请问 亲 成 弄 办 一下 下 就 还 也 和".split()
)


def _features(item: InboxItem) -> list[str]:
    """Content words (pkuseg tokens without function words), their characters and
    character bigrams: paraphrases share characters even when segmented differently."""
    words = item.tokens.split() or list(item.text)
    content = [w for w in words if w not in STOPWORDS] or words
    out = [f"w:{w}" for w in content]
    for w in content:
        out += [f"c:{w[i : i + 2]}" for i in range(len(w) - 1)]
        out += [f"u:{ch}" for ch in w]
    return out


@dataclass
class Group:
    id: int  # the id of its most frequent item
    items: list[InboxItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(i.count for i in self.items)

    @property
    def label(self) -> str:
        return self.items[0].text

    def suggestions(self, limit: int = 3) -> list[tuple[str, float]]:
        """Intents ranked by their confidence summed over the group, weighted by how often
        each message was seen (averaged: a share between 0 and 1)."""
        scores: dict[str, float] = defaultdict(float)
        total = 0
        for item in self.items:
            total += item.count
            for name, confidence in item.suggestions(limit=5):
                scores[name] += confidence * item.count
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        return [(name, score / max(total, 1)) for name, score in ranked[:limit]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "count": self.count,
            "items": [i.as_dict() for i in self.items],
            "suggestions": [
                {"intent": n, "confidence": round(c, 3)} for n, c in self.suggestions()
            ],
        }


def group_items(items: list[InboxItem], threshold: float = DEFAULT_THRESHOLD) -> list[Group]:
    """Similar items together; groups ordered by their total count."""
    if not items:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    ordered = sorted(items, key=lambda i: (-i.count, -i.last_seen, i.id))
    vectorizer = TfidfVectorizer(analyzer=_features, sublinear_tf=True)
    matrix = vectorizer.fit_transform(ordered)
    groups: list[Group] = []
    centroids: list[Any] = []
    members: list[list[int]] = []
    for index, item in enumerate(ordered):
        row = matrix[index]
        best, best_score = -1, threshold
        for g, centroid in enumerate(centroids):
            score = float((row @ centroid.T).toarray()[0][0])
            if score >= best_score:
                best, best_score = g, score
        if best < 0:
            groups.append(Group(id=item.id, items=[item]))
            centroids.append(row)
            members.append([index])
        else:
            groups[best].items.append(item)
            members[best].append(index)
            centroids[best] = normalize(matrix[members[best]].sum(axis=0).A)
            from scipy.sparse import csr_matrix

            centroids[best] = csr_matrix(centroids[best])
    return sorted(groups, key=lambda g: (-g.count, g.id))
