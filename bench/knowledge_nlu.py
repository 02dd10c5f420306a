"""The knowledge base's effect on the NLU alone: a quick, stack-free companion of
bench/knowledge.py for working on accuracy.

Trains two NLU models with the project's pipeline (``rasa train nlu``, the same generated
training files as the worker's retrain): a control without any entry and one after
importing the spreadsheet (with the import's textual and model checks, the control model
classifying), then parses in this process:

* heldout accuracy of the existing intents (tests/nlu/heldout.yml), control and with the
  knowledge base, and which intents the new misses went to;
* accuracy on the paraphrases never imported: of the imported entries (as
  bench/knowledge.py counts) and of all the spreadsheet's entries (a refused entry's
  paraphrase counts as missed), with where the misses went (another entry, an existing
  intent, not understood).

    .venv/bin/python bench/knowledge_nlu.py [--config config.yml] [--paraphrases FILE]
        [--work DIR] [--reuse-control] [--reuse-kb] [--reuse-trained] [--json out.json]

The blind paraphrases' lines are never printed (counts only), so the people working on the
pipeline do not learn them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from knowledge import KB_FILE, PARAPHRASES, heldout, paraphrases  # noqa: E402

from xiaoer.nlu.knowledge import OFF_ENV as MATCHER_OFF  # noqa: E402


def train_nlu(config: Path, out: Path, name: str) -> tuple[Path, float]:
    import shutil

    from xiaoer.training.trainer import prepare

    inputs = prepare(out.parent / f"build-{name}")
    nlu = out.parent / f"nlu-{name}"  # `rasa train nlu` reads one folder
    shutil.rmtree(nlu, ignore_errors=True)
    for i, folder in enumerate(inputs.data):
        shutil.copytree(folder, nlu / str(i))
    started = time.monotonic()
    subprocess.run(
        [str(Path(sys.executable).with_name("rasa")), "train", "nlu", "--config", str(config),
         "--domain", str(inputs.domain), "--nlu", str(nlu),
         "--out", str(out), "--fixed-model-name", name],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return out / f"{name}.tar.gz", time.monotonic() - started


class Parser:
    """Parse with a model in this process, as the Rasa server would."""

    def __init__(self, model: Path) -> None:
        import logging

        from rasa.core.agent import Agent
        from rasa.utils.log_utils import configure_structlog

        # quiet: Rasa's debug log would print every parsed text (the blind set's too)
        os.environ["LOG_LEVEL"] = "WARNING"
        configure_structlog(logging.WARNING)
        logging.getLogger().setLevel(logging.WARNING)
        self.agent = Agent.load(str(model))
        self.loop = asyncio.new_event_loop()

    def __call__(self, text: str) -> dict[str, Any]:
        return dict(self.loop.run_until_complete(self.agent.parse_message(text)))

    def classify(self, texts: list[str]) -> dict[str, tuple[str, float]]:
        out = {}
        for text in dict.fromkeys(t for t in texts if t):
            intent = self(text).get("intent") or {}
            out[text] = (str(intent.get("name") or ""), float(intent.get("confidence") or 0))
        return out


def heldout_result(parse: Parser) -> dict[str, Any]:
    pairs = heldout()
    got = [(text, intent, parse(text)["intent"]["name"]) for text, intent in pairs]
    right = sum(1 for _, want, have in got if want == have)
    return {"accuracy": round(right / len(pairs), 4), "n": len(pairs), "got": got}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--kb", type=Path, default=KB_FILE)
    parser.add_argument("--paraphrases", type=Path, action="append")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--reuse-control", action="store_true",
                        help="keep the control model of an earlier run in --work")  # fmt: skip
    parser.add_argument("--reuse-kb", action="store_true",
                        help="keep the knowledge base of <work>/var (e.g. another seed's run "
                             "on the same entries) instead of importing again")  # fmt: skip
    parser.add_argument("--reuse-trained", action="store_true",
                        help="keep the model with the knowledge base of an earlier run in "
                             "--work (to measure a run-time change of the pipeline)")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sets = args.paraphrases or [PARAPHRASES]

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-kb-nlu-"))
    work.mkdir(parents=True, exist_ok=True)
    var = work / "var"
    if var.exists() and not args.reuse_kb:
        import shutil

        shutil.rmtree(var)
    os.environ["XIAOER_DATA_DIR"] = str(var)
    from xiaoer.core.config import get_settings

    get_settings.cache_clear()
    from xiaoer.knowledge.answers import response_key
    from xiaoer.knowledge.importing import import_bytes, shop_products
    from xiaoer.knowledge.sheets import read_table
    from xiaoer.knowledge.store import get_knowledge_store, match_key

    results: dict[str, Any] = {"config": str(args.config), "work": str(work)}
    models = work / "models"
    control = models / "control.tar.gz"
    if not (args.reuse_control and control.exists()):
        print("==> training the control (no entry)…", flush=True)
        control, seconds = train_nlu(args.config, models, "control")
        results["control_train_seconds"] = round(seconds)
    before = Parser(control)
    # the assistant before the import: no entry, so no run-time matcher (with --reuse-kb the
    # store already holds the entries, which the control must not see)
    os.environ[MATCHER_OFF] = "1"
    held_before = heldout_result(before)
    print(f"    heldout {held_before['accuracy']:.4f}", flush=True)

    store = get_knowledge_store()
    if args.reuse_kb and store.all():
        print(f"==> the knowledge base of {var}: {len(store.all())} entries", flush=True)
    else:
        report = import_bytes(args.kb.read_bytes(), args.kb.name, store,
                              asyncio.run(shop_products()), by="bench", classify=before.classify)  # fmt: skip
        results["import"] = report.as_dict()["counts"]
        refused = Counter(
            c.flow
            for r in report.rows
            if r.status == "rejected"
            for c in r.collisions[:1]
            if c.flow
        )
        results["refused_by_flow"] = dict(refused.most_common())
        print(f"==> import: {report.summary()}", flush=True)
    del before
    os.environ.pop(MATCHER_OFF, None)

    model = models / "kb.tar.gz"
    if not (args.reuse_trained and model.exists()):
        print("==> training with the knowledge base…", flush=True)
        model, seconds = train_nlu(args.config, models, "kb")
        results["kb_train_seconds"] = round(seconds)
    after = Parser(model)
    held_after = heldout_result(after)
    lost = Counter(
        f"{want}->{have}"
        for (_, want, was), (_, _, have) in zip(held_before["got"], held_after["got"], strict=True)
        if was == want and have != want
    )
    won = sum(
        1
        for (_, want, was), (_, _, have) in zip(held_before["got"], held_after["got"], strict=True)
        if was != want and have == want
    )
    results["heldout"] = {
        "before": held_before["accuracy"],
        "after": held_after["accuracy"],
        "drop_points": round((held_before["accuracy"] - held_after["accuracy"]) * 100, 2),
        "lost": dict(lost.most_common()),
        "won": won,
    }
    print(f"==> heldout {held_before['accuracy']:.4f} -> {held_after['accuracy']:.4f} "
          f"(lost {sum(lost.values())}, won {won}): {dict(lost.most_common(8))}", flush=True)  # fmt: skip

    sheet = read_table(args.kb.read_bytes(), args.kb.name)
    questions = {match_key(r["问题"]) for r in sheet.rows}
    imported = {e.question_key: e for e in store.all(enabled_only=True)}
    results["paraphrases"] = {}
    for path in sets:
        if not path.exists():
            continue
        pairs = paraphrases(path, questions)
        right_imported = n_imported = right_all = 0
        missed: Counter[str] = Counter()
        for question, text in pairs:
            want = match_key(question)
            parsed = after(text)
            key = response_key(parsed)
            entry = store.by_key(key) if key else None
            ok = entry is not None and entry.question_key == want
            right_all += ok
            if want in imported:
                n_imported += 1
                right_imported += ok
            if not ok:
                intent = parsed["intent"]["name"]
                if want not in imported:
                    missed["entry refused at import"] += 1
                elif entry is not None:
                    missed["another entry"] += 1
                elif intent == "nlu_fallback":
                    missed["not understood"] += 1
                else:
                    missed["an existing intent"] += 1
        name = path.name
        results["paraphrases"][name] = {
            "n": len(pairs),
            "imported_accuracy": round(right_imported / max(n_imported, 1), 4),
            "imported_n": n_imported,
            "all_accuracy": round(right_all / max(len(pairs), 1), 4),
            "missed": dict(missed.most_common()),
        }
        print(f"==> {name}: imported {right_imported}/{n_imported} = "
              f"{right_imported / max(n_imported, 1):.4f}; all {right_all}/{len(pairs)} = "
              f"{right_all / max(len(pairs), 1):.4f}; missed {dict(missed)}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
