"""Contact capture benchmark: precision, recall and F1 of ``xiaoer.text.contacts.find_contacts``.

Runs on the labelled set ``bench/data/contacts.yml`` (Douyin shop messages written for this
benchmark, not in the training data). Scoring is over (kind, value) pairs per message:
a predicted pair is a true positive when the message's labels hold it, a false positive
otherwise; a labelled pair not predicted is a false negative.

    .venv/bin/python bench/contacts.py [--data FILE] [--errors] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xiaoer.text.contacts import find_contacts  # noqa: E402

DATA = ROOT / "bench" / "data" / "contacts.yml"
KINDS = ("phone", "wechat")


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def load(path: Path) -> list[dict]:
    messages = yaml.safe_load(path.read_text(encoding="utf-8"))["messages"]
    for m in messages:
        unknown = set(m) - {"text", *KINDS}
        if unknown:
            raise ValueError(f"unknown keys {unknown} in {m}")
    return messages


def gold_pairs(message: dict) -> set[tuple[str, str]]:
    return {(kind, str(value)) for kind in KINDS for value in message.get(kind) or []}


def evaluate(messages: list[dict]) -> tuple[dict[str, Counts], list[dict], float]:
    counts = {kind: Counts() for kind in (*KINDS, "overall")}
    errors: list[dict] = []
    started = time.perf_counter()
    predictions = [{(c.kind, c.value) for c in find_contacts(m["text"])} for m in messages]
    elapsed = time.perf_counter() - started
    for message, predicted in zip(messages, predictions, strict=True):
        gold = gold_pairs(message)
        for kind in KINDS:
            g = {p for p in gold if p[0] == kind}
            p = {p for p in predicted if p[0] == kind}
            for bucket in (counts[kind], counts["overall"]):
                bucket.tp += len(g & p)
                bucket.fp += len(p - g)
                bucket.fn += len(g - p)
        if gold != predicted:
            errors.append(
                {
                    "text": message["text"],
                    "missed": sorted(gold - predicted),
                    "spurious": sorted(predicted - gold),
                }
            )
    return counts, errors, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--errors", action="store_true", help="list every wrong message")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    messages = load(args.data)
    with_contacts = sum(1 for m in messages if gold_pairs(m))
    counts, errors, elapsed = evaluate(messages)

    print(
        f"{len(messages)} messages ({with_contacts} with contacts, "
        f"{len(messages) - with_contacts} without), "
        f"{elapsed / len(messages) * 1000:.2f} ms/message"
    )
    print(f"{'':8} {'P':>6} {'R':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}")
    for name, c in counts.items():
        print(f"{name:8} {c.precision:6.3f} {c.recall:6.3f} {c.f1:6.3f} {c.tp:4} {c.fp:4} {c.fn:4}")
    print(f"{len(errors)} message(s) with an error")
    if args.errors:
        for e in errors:
            print(f"  {e['text']}\n    missed {e['missed']} spurious {e['spurious']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "messages": len(messages),
                    "with_contacts": with_contacts,
                    "ms_per_message": round(elapsed / len(messages) * 1000, 3),
                    **{name: c.as_dict() for name, c in counts.items()},
                    "errors": errors,
                },
                ensure_ascii=False,
                indent=1,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
