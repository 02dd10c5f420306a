"""Blind evaluation: intent accuracy and conversation pass rate on messages the data
authors never saw (bench/data/blind/, written from the taxonomy and the demo shop only).

    .venv/bin/python bench/conversations.py --model models/NEW.tar.gz \
        [--baseline-model OLD.tar.gz --baseline-root /path/to/previous/checkout] \
        [--out bench/CONVERSATIONS.md]

For each model a real stack (action server + Rasa server) is started on free ports with a
fresh data folder; the shop is restored to its seeded state before every conversation.

* intent accuracy: every single-intent message through Rasa's /model/parse; a message
  with several questions counts as right when the predicted intent is one of them;
* a conversation passes when every turn's reply (all bubbles joined) contains one of
  ``expect_any``, none of ``forbid``, and no turn has more than one "didn't understand";
* figures per pattern, and the failures, in the report.

The baseline runs with the code of ``--baseline-root`` (a checkout of the previous
release), so that an old model is served by the actions it was trained for.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
BLIND = ROOT / "bench" / "data" / "blind"

# Generic shapes of a "didn't understand" reply (every variation of please_rephrase).
NOT_UNDERSTOOD = re.compile(r"没太明白|没看懂|没理解|没听懂|换个说法|换种说法")


def squash(text: str) -> str:
    """Compare without spaces and case: 48 小时 == 48小时, SF == sf."""
    return re.sub(r"\s+", "", text).lower()


def reply_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """All bubbles joined (with button titles) and how many bubbles said 'not understood'."""
    parts, misses = [], 0
    for m in messages:
        text = m.get("text") or ""
        if NOT_UNDERSTOOD.search(text):
            misses += 1
        parts.append(text)
        parts += [b.get("title", "") for b in m.get("buttons") or []]
    return "\n".join(parts), misses


# ---------------------------------------------------------------- one model, one stack


class Shop:
    """Restores the demo shop's tables to their seeded state between conversations (the
    same records, at the same seeding moment; the project database's other tables stay)."""

    def __init__(self, path: Path) -> None:
        from sqlalchemy import select

        from xiaoer.shop.sqlite_backend import meta

        self.path = path
        with self._db().connect() as conn:
            seeded = conn.execute(select(meta.c.value).where(meta.c.key == "seeded_at")).scalar()
        self.seeded_at = datetime.fromisoformat(str(seeded))

    def _db(self) -> Any:
        from xiaoer.core.db import database_for

        return database_for(self.path)

    def restore(self) -> None:
        from xiaoer.shop.sqlite_backend import seed_demo_shop

        seed_demo_shop(self._db(), now=self.seeded_at, reset=True)


def post(url: str, sender: str, text: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    for attempt in range(20):
        r = requests.post(
            url, json={"sender": sender, "message": text}, headers=headers, timeout=120
        )
        if r.status_code == 429 and attempt < 19:  # rate-limited: wait as told
            time.sleep(float(r.headers.get("Retry-After") or 1))
            continue
        r.raise_for_status()
        return list(r.json())
    raise RuntimeError("rate limited")


def evaluate(model: Path, blind: Path, workdir: Path) -> dict[str, Any]:
    """Serve ``model`` with the code on sys.path and run the blind set against it."""
    from xiaoer.devtools.stack import RASA_ENV, running_stack

    messages = yaml.safe_load((blind / "messages.yml").read_text(encoding="utf-8"))["messages"]
    conversations = yaml.safe_load((blind / "conversations.yml").read_text(encoding="utf-8"))[
        "conversations"
    ]
    var = workdir / "var"
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(var)}
    # seed the demo shop before the servers start, so it can be restored later
    subprocess.run(
        [str(Path(sys.executable).with_name("xiaoer")), "seed"],
        env=env,
        check=True,
        capture_output=True,
    )
    shop = Shop(var / "xiaoer.db")  # the demo shop's tables are in the project database
    env_extra = {"XIAOER_BENCH": "1"}
    if os.environ.get("XIAOER_CONFIG"):
        env_extra["XIAOER_CONFIG"] = os.environ["XIAOER_CONFIG"]
    result: dict[str, Any] = {"messages": [], "conversations": []}
    with running_stack(model, workdir, env_extra=env_extra) as stack:
        parse_url = f"{stack.rasa_url}/model/parse"
        for m in messages:
            r = requests.post(parse_url, params={"token": stack.token}, json={"text": m["text"]})
            r.raise_for_status()
            got = (r.json().get("intent") or {}).get("name")
            want = m["intent"] if isinstance(m["intent"], list) else [m["intent"]]
            result["messages"].append(
                {
                    "text": m["text"],
                    "want": want,
                    "got": got,
                    "ok": got in want,
                    "pattern": m.get("pattern", "?"),
                    "multi": len(want) > 1,
                }
            )
        headers: dict[str, str] = {}
        for conv in conversations:
            shop.restore()
            sender = f"blind-{conv['id']}-{uuid.uuid4().hex[:8]}"
            turns = []
            for turn in conv["turns"]:
                replies = post(stack.webhook, sender, turn["user"], headers)
                text, misses = reply_text(replies)
                flat = squash(text)
                expect = turn.get("expect_any") or []
                forbid = turn.get("forbid") or []
                problems = []
                if expect and not any(squash(e) in flat for e in expect):
                    problems.append("missing one of " + " / ".join(expect[:4]))
                bad = [f for f in forbid if squash(f) in flat]
                if bad:
                    problems.append("forbidden " + " / ".join(bad))
                if misses > 1:
                    problems.append(f"{misses}× not understood")
                turns.append(
                    {
                        "user": turn["user"],
                        "bot": text,
                        "bubbles": len(replies),
                        "misses": misses,
                        "problems": problems,
                    }
                )
            result["conversations"].append(
                {
                    "id": conv["id"],
                    "pattern": conv.get("pattern", "?"),
                    "ok": all(not t["problems"] for t in turns),
                    "turns": turns,
                }
            )
    return result


# ---------------------------------------------------------------- report


def summary(result: dict[str, Any]) -> dict[str, Any]:
    single = [m for m in result["messages"] if not m["multi"]]
    multi = [m for m in result["messages"] if m["multi"]]
    per_pattern: dict[str, list[bool]] = defaultdict(list)
    for m in result["messages"]:
        per_pattern[m["pattern"]].append(m["ok"])
    conv_pattern: dict[str, list[bool]] = defaultdict(list)
    for c in result["conversations"]:
        conv_pattern[c["pattern"]].append(c["ok"])
    turns = [t for c in result["conversations"] for t in c["turns"]]
    return {
        "intent_accuracy": sum(m["ok"] for m in single) / max(1, len(single)),
        "single": len(single),
        "multi_accuracy": sum(m["ok"] for m in multi) / max(1, len(multi)),
        "multi": len(multi),
        "conversations_passed": sum(c["ok"] for c in result["conversations"]),
        "conversations": len(result["conversations"]),
        "turns_with_storm": sum(1 for t in turns if t["misses"] > 1),
        "turns_not_understood": sum(1 for t in turns if t["misses"]),
        "turns": len(turns),
        "per_pattern": {k: (sum(v), len(v)) for k, v in sorted(per_pattern.items())},
        "conv_pattern": {k: (sum(v), len(v)) for k, v in sorted(conv_pattern.items())},
    }


def pattern_table(sums: dict[str, dict[str, Any]], names: list[str], key: str) -> list[str]:
    """A markdown table of ok/total per pattern, one column per model."""
    patterns = sorted({p for s in sums.values() for p in s[key]})
    lines = ["| pattern | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for p in patterns:
        cells = ["{}/{}".format(*sums[n][key].get(p, (0, 0))) for n in names]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def report(results: dict[str, dict[str, Any]], out: Path | None) -> str:
    lines = ["# Blind evaluation", ""]
    lines.append(f"{time.strftime('%Y-%m-%d %H:%M')}, `{' '.join(sys.argv)}`")
    lines.append("")
    sums = {name: summary(r) for name, r in results.items()}
    names = list(results)
    lines.append("| figure | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))

    def row(label: str, fmt: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(sums[n]) for n in names) + " |")

    row(
        "intent accuracy (single-intent messages)",
        lambda s: f"{s['intent_accuracy']:.3f} ({s['single']})",
    )
    row(
        "multi-question messages: intent is one of the questions",
        lambda s: f"{s['multi_accuracy']:.3f} ({s['multi']})",
    )
    row(
        "conversations passed",
        lambda s: f"{s['conversations_passed']}/{s['conversations']} ({s['conversations_passed'] / max(1, s['conversations']):.0%})",
    )
    row(
        "turns with more than one 'not understood'",
        lambda s: f"{s['turns_with_storm']}/{s['turns']}",
    )
    row("turns with a 'not understood'", lambda s: f"{s['turns_not_understood']}/{s['turns']}")
    lines += ["", "## Intent accuracy per pattern", ""]
    lines += pattern_table(sums, names, "per_pattern")
    lines += ["", "## Conversations per pattern", ""]
    lines += pattern_table(sums, names, "conv_pattern")
    last = names[-1]
    lines += ["", f"## Failures of `{last}`", ""]
    for m in results[last]["messages"]:
        if not m["ok"]:
            lines.append(f"- intent `{m['text']}`: want {'+'.join(m['want'])}, got {m['got']}")
    for c in results[last]["conversations"]:
        if c["ok"]:
            continue
        lines.append(f"- conversation {c['id']} ({c['pattern']}):")
        for t in c["turns"]:
            mark = "✗ " + "; ".join(t["problems"]) if t["problems"] else "✓"
            bot = t["bot"].replace("\n", " ⏎ ")[:160]
            lines.append(f"  - {t['user']} → {bot} — {mark}")
    text = "\n".join(lines) + "\n"
    if out:
        out.write_text(text, encoding="utf-8")
    return text


def run_child(model: Path, root: Path, blind: Path) -> dict[str, Any]:
    """Evaluate with another checkout's code (its xiaoer and actions)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(
        [sys.executable, __file__, "--child", "--model", str(model), "--blind", str(blind),
         "--json", str(out)],
        cwd=root,
        env=env,
        check=True,
    )  # fmt: skip
    return json.loads(out.read_text(encoding="utf-8"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--baseline-model", type=Path)
    ap.add_argument("--baseline-root", type=Path, help="checkout whose code serves the baseline")
    ap.add_argument("--blind", type=Path, default=BLIND)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
        with tempfile.TemporaryDirectory(prefix="xiaoer-blind-") as tmp:
            result = evaluate(args.model.resolve(), args.blind.resolve(), Path(tmp))
        args.json.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        return
    results: dict[str, dict[str, Any]] = {}
    if args.baseline_model:
        root = (args.baseline_root or ROOT).resolve()
        results["baseline"] = run_child(args.baseline_model.resolve(), root, args.blind.resolve())
    results["current"] = run_child(args.model.resolve(), ROOT, args.blind.resolve())
    print(report(results, args.out))


if __name__ == "__main__":
    main()
