"""``xiaoer check``: the conversation designer's check of the training data, as one
readable report (terminal, and HTML under ``<data folder>/reports/``).

Steps (``--skip`` leaves some out):

1. ``validate``: ``rasa data validate --fail-on-warnings``;
2. ``stories``: ``rasa test core`` on the test stories (``tests/test_stories.yml``) with the
   current model (``--model``, else ``$XIAOER_TEST_MODEL``, else the newest in
   ``models/``), failing on prediction errors;
3. ``nlu``: a cross-validation of the NLU on a sample (at most ``--per-intent`` examples
   of each intent, seeded) and the confusions it shows. By default a fast stand-in for
   the pipeline (``--nlu-pipeline fast``: TF-IDF over the project's normalised pkuseg
   tokens and character n-grams, a linear classifier, stratified folds; seconds) that
   finds the same overlaps between intents' examples that confuse DIET; ``--nlu-pipeline
   rasa`` runs ``rasa test nlu --cross-validation`` with the project's config on the
   sample instead (minutes: a model per fold);
4. always: intents with fewer than ``--min-examples`` (20) examples, and pairs of intents
   confused above ``--confusion`` (share of one intent's examples predicted as the other,
   default 0.1).

Exit status 1 when a step fails or something is flagged (``--no-fail`` for 0).
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaoer.devtools.stack import RASA_ENV

STEPS = ("validate", "stories", "nlu")
DEFAULT_MIN_EXAMPLES = 20
DEFAULT_CONFUSION = 0.1
DEFAULT_PER_INTENT = 40
DEFAULT_FOLDS = 3


@dataclass
class StepResult:
    name: str
    title: str
    ok: bool
    summary: str
    output: str = ""
    skipped: bool = False


@dataclass
class Report:
    root: Path
    steps: list[StepResult] = field(default_factory=list)
    examples: dict[str, int] = field(default_factory=dict)
    few: list[tuple[str, int]] = field(default_factory=list)
    confusions: list[tuple[str, str, float, int, int]] = field(default_factory=list)
    accuracy: float | None = None
    sample_size: int = 0
    min_examples: int = DEFAULT_MIN_EXAMPLES
    threshold: float = DEFAULT_CONFUSION
    pipeline: str = "fast"
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # text, intent, predicted

    @property
    def ok(self) -> bool:
        steps_ok = all(s.ok for s in self.steps if not s.skipped)
        return steps_ok and not self.few and not self.confusions


def _rasa() -> str:
    return str(Path(sys.executable).with_name("rasa"))


def _run(command: list[str], root: Path, timeout: float = 1800) -> tuple[int, str]:
    proc = subprocess.run(
        command, cwd=root, env={**os.environ, **RASA_ENV}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


# --- data ----------------------------------------------------------------------------------
def nlu_examples(root: Path) -> dict[str, list[str]]:
    """Every intent's examples in ``data/nlu`` (entity annotations reduced to their text)."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(root / "data" / "nlu"), language="zh")
    out: dict[str, list[str]] = defaultdict(list)
    for message in data.intent_examples:
        intent = message.get("intent")
        text = message.get("text")
        if intent and text:
            out[str(intent)].append(str(text))
    return dict(out)


def sample(examples: dict[str, list[str]], per_intent: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out = {}
    for intent, texts in sorted(examples.items()):
        texts = list(texts)
        rng.shuffle(texts)
        out[intent] = texts[:per_intent]
    return out


# --- the fast cross-validation -------------------------------------------------------------
def _analyzer() -> Any:
    from xiaoer.nlu.tokenizer import DEFAULT_TERMS, get_segmenter, read_terms
    from xiaoer.text.normalize import normalize_message_text

    seg = get_segmenter(tuple(read_terms(DEFAULT_TERMS)))

    def features(text: str) -> list[str]:
        # order numbers and phones are entities, read by the extractors: one token here
        norm = re.sub(r"\d[\d\s-]{4,}\d", "0", normalize_message_text(text))
        words = [w for w in seg.cut(norm) if w.strip()]
        chars = re.sub(r"\s+", "", norm)
        grams = [chars[i : i + n] for n in (1, 2) for i in range(len(chars) - n + 1)]
        return [f"w:{w}" for w in words] + [f"c:{g}" for g in grams]

    return features


def fast_cross_validation(
    data: dict[str, list[str]], folds: int, seed: int
) -> list[tuple[str, str, str]]:
    """(text, intent, predicted) for every example of ``data``, each predicted by a
    classifier trained on the other folds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    texts = [t for intent in sorted(data) for t in data[intent]]
    labels = [intent for intent in sorted(data) for _ in data[intent]]
    usable = {i for i, n in Counter(labels).items() if n >= folds}
    texts_used = [t for t, y in zip(texts, labels, strict=True) if y in usable]
    labels_used = [y for y in labels if y in usable]
    if len(usable) < 2:
        return []
    analyzer = _analyzer()
    results: list[tuple[str, str, str]] = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(texts_used, labels_used):
        model = make_pipeline(
            TfidfVectorizer(analyzer=analyzer, sublinear_tf=True), LinearSVC(C=1.0)
        )
        model.fit([texts_used[i] for i in train], [labels_used[i] for i in train])
        predicted = model.predict([texts_used[i] for i in test])
        for i, p in zip(test, predicted, strict=True):
            results.append((texts_used[i], labels_used[i], str(p)))
    return results


def rasa_cross_validation(
    root: Path, data: dict[str, list[str]], folds: int, out: Path
) -> tuple[list[tuple[str, str, str]], str]:
    """``rasa test nlu --cross-validation`` on the sample with the project's config."""
    sample_file = out / "sample_nlu.yml"
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in sorted(data.items()):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {t}" for t in texts]
    sample_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output = _run(
        [_rasa(), "test", "nlu", "--nlu", str(sample_file), "--config",
         str(root / "config.yml"), "--cross-validation", "--folds", str(folds),
         "--out", str(out / "rasa")],
        root,
    )  # fmt: skip
    if code != 0:
        raise RuntimeError(output[-2000:])
    wrong: list[tuple[str, str, str]] = []
    errors = out / "rasa" / "intent_errors.json"
    if errors.exists():
        for e in json.loads(errors.read_text(encoding="utf-8")):
            predicted = (e.get("intent_prediction") or {}).get("name") or ""
            wrong.append((str(e.get("text")), str(e.get("intent")), str(predicted)))
    # every example once: the errors, the rest counted as right (text not needed)
    counts = Counter(i for _, i, _ in wrong)
    results = list(wrong)
    for intent in data:
        results += [("", intent, intent)] * max(0, len(data[intent]) - counts.get(intent, 0))
    return results, output


def confusions(
    results: list[tuple[str, str, str]], threshold: float
) -> list[tuple[str, str, float, int, int]]:
    """(intent, predicted as, share, count, of) above ``threshold``, worst first."""
    totals = Counter(intent for _, intent, _ in results)
    pairs = Counter((intent, p) for _, intent, p in results if p != intent)
    found = [
        (a, b, n / totals[a], n, totals[a])
        for (a, b), n in pairs.items()
        if totals[a] and n / totals[a] > threshold
    ]
    return sorted(found, key=lambda x: (-x[2], x[0], x[1]))


# --- the run -------------------------------------------------------------------------------
def current_model(root: Path, model: str | None) -> Path | None:
    if model:
        return Path(model)
    if os.environ.get("XIAOER_TEST_MODEL"):
        return Path(os.environ["XIAOER_TEST_MODEL"])
    models = sorted((root / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def run_check(
    root: Path,
    *,
    skip: tuple[str, ...] = (),
    model: str | None = None,
    stories: str = "tests/test_stories.yml",
    min_examples: int = DEFAULT_MIN_EXAMPLES,
    threshold: float = DEFAULT_CONFUSION,
    per_intent: int = DEFAULT_PER_INTENT,
    folds: int = DEFAULT_FOLDS,
    seed: int = 42,
    pipeline: str = "fast",
    echo: Any = None,
) -> Report:
    say = echo or (lambda line: None)
    report = Report(root=root, min_examples=min_examples, threshold=threshold, pipeline=pipeline)
    if "validate" in skip:
        report.steps.append(
            StepResult("validate", "rasa data validate", True, "跳过", skipped=True)
        )
    else:
        say("==> rasa data validate --fail-on-warnings")
        code, output = _run([_rasa(), "data", "validate", "--fail-on-warnings"], root)
        warnings = [
            line for line in output.splitlines() if "UserWarning" in line or "WARNING" in line
        ]
        report.steps.append(
            StepResult("validate", "rasa data validate --fail-on-warnings", code == 0,
                       "通过" if code == 0 else f"未通过（{len(warnings)} 条警告或错误）",
                       output[-6000:])
        )  # fmt: skip
    if "stories" in skip:
        report.steps.append(StepResult("stories", "测试故事", True, "跳过", skipped=True))
    else:
        found = current_model(root, model)
        if found is None or not found.exists():
            report.steps.append(
                StepResult(
                    "stories", "测试故事", False, "没有模型：先运行 xiaoer train 或用 --model"
                )
            )
        else:
            say(f"==> rasa test core --stories {stories} (model {found.name})")
            with tempfile.TemporaryDirectory(prefix="xiaoer-check-") as out:
                code, output = _run(
                    [_rasa(), "test", "core", "--stories", stories, "--model", str(found),
                     "--out", out, "--fail-on-prediction-errors"],
                    root,
                )  # fmt: skip
                failed = Path(out) / "failed_test_stories.yml"
                failed_text = failed.read_text(encoding="utf-8") if failed.exists() else ""
            n_failed = failed_text.count("- story:")
            report.steps.append(
                StepResult("stories", f"测试故事（{stories}）", code == 0,
                           "全部通过" if code == 0 else f"未通过（{n_failed} 个故事预测错误）",
                           (failed_text or output)[-6000:])
            )  # fmt: skip
    say("==> NLU examples per intent")
    examples = nlu_examples(root)
    report.examples = {k: len(v) for k, v in sorted(examples.items())}
    # intents the channels trigger (EXTERNAL_…) are never typed: no examples needed
    report.few = sorted(
        (
            (k, n)
            for k, n in report.examples.items()
            if n < min_examples and not k.startswith("EXTERNAL_")
        ),
        key=lambda x: x[1],
    )
    if "nlu" in skip:
        report.steps.append(StepResult("nlu", "NLU 交叉验证", True, "跳过", skipped=True))
        return report
    data = sample(examples, per_intent, seed)
    report.sample_size = sum(len(v) for v in data.values())
    say(f"==> NLU cross-validation ({pipeline}, {folds} folds, {report.sample_size} examples)")
    started = time.monotonic()
    output = ""
    try:
        if pipeline == "rasa":
            with tempfile.TemporaryDirectory(prefix="xiaoer-cv-") as out:
                results, output = rasa_cross_validation(root, data, folds, Path(out))
        else:
            results = fast_cross_validation(data, folds, seed)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        report.steps.append(StepResult("nlu", "NLU 交叉验证", False, f"失败：{exc}"))
        return report
    right = sum(1 for _, i, p in results if i == p)
    report.accuracy = right / len(results) if results else None
    report.errors = [r for r in results if r[1] != r[2] and r[0]]
    report.confusions = confusions(results, threshold)
    seconds = time.monotonic() - started
    summary = (
        f"准确率 {report.accuracy:.1%}（{len(results)} 条，{seconds:.0f} 秒）"
        if report.accuracy is not None
        else "样本不足"
    )
    report.steps.append(StepResult("nlu", f"NLU 交叉验证（{pipeline}，{folds} 折）", True,
                                   summary, output[-3000:]))  # fmt: skip
    return report


# --- rendering ----------------------------------------------------------------------------
def render_text(report: Report) -> str:
    lines = ["训练数据检查报告", ""]
    for s in report.steps:
        mark = "—" if s.skipped else ("✓" if s.ok else "✗")
        lines.append(f"{mark} {s.title}：{s.summary}")
    lines.append("")
    total = sum(report.examples.values())
    lines.append(f"意图 {len(report.examples)} 个，例句 {total} 条")
    if report.few:
        lines.append(f"✗ 例句少于 {report.min_examples} 条的意图（{len(report.few)} 个）：")
        lines += [f"    {name}: {n} 条" for name, n in report.few]
    else:
        lines.append(f"✓ 每个意图都有至少 {report.min_examples} 条例句")
    if report.confusions:
        lines.append(f"✗ 容易混淆的意图（超过 {report.threshold:.0%} 的例句被判成另一个意图）：")
        for a, b, share, n, of in report.confusions:
            lines.append(f"    {a} → {b}: {share:.0%}（{n}/{of}）")
            shown = [t for t, i, p in report.errors if i == a and p == b][:3]
            lines += [f"        例：{t}" for t in shown]
    elif report.accuracy is not None:
        lines.append(f"✓ 没有超过 {report.threshold:.0%} 的意图混淆")
    for s in report.steps:
        if not s.ok and not s.skipped and s.output:
            lines += ["", f"--- {s.title} 输出（末尾）---", s.output[-2000:].rstrip()]
    lines += ["", "结论：" + ("通过" if report.ok else "有问题需要处理")]
    return "\n".join(lines) + "\n"


def render_html(report: Report) -> str:
    e = html.escape
    rows = "".join(
        f"<tr class='{'skip' if s.skipped else ('ok' if s.ok else 'bad')}'><td>{e(s.title)}</td>"
        f"<td>{e(s.summary)}</td></tr>"
        for s in report.steps
    )
    few = "".join(f"<tr><td>{e(n)}</td><td>{c}</td></tr>" for n, c in report.few)
    conf = ""
    for a, b, share, n, of in report.confusions:
        ex = "<br>".join(e(t) for t, i, p in report.errors if i == a and p == b)
        conf += (
            f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{share:.0%}（{n}/{of}）</td><td>{ex}</td></tr>"
        )
    counts = "".join(
        f"<tr><td>{e(n)}</td><td>{c}</td></tr>" for n, c in sorted(report.examples.items())
    )
    outputs = "".join(
        f"<details><summary>{e(s.title)} 输出</summary><pre>{e(s.output)}</pre></details>"
        for s in report.steps
        if s.output
    )
    verdict = "通过" if report.ok else "有问题需要处理"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>训练数据检查报告</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 20px auto; padding: 0 16px; color: #1f2733; }}
table {{ border-collapse: collapse; width: 100%; margin: 8px 0 20px; }}
td, th {{ border-bottom: 1px solid #e3e7ee; padding: 6px 8px; text-align: left; vertical-align: top; }}
tr.ok td:first-child {{ box-shadow: inset 3px 0 #2e9d5b; }} tr.bad td:first-child {{ box-shadow: inset 3px 0 #d23c3c; }}
tr.skip {{ color: #8895a7; }} pre {{ white-space: pre-wrap; font-size: 12px; background: #f6f8fa; padding: 8px; }}
.verdict {{ font-size: 18px; font-weight: 600; }}
</style></head><body>
<h1>训练数据检查报告</h1>
<p class="verdict">结论：{verdict}</p>
<p>生成于 {e(time.strftime('%Y-%m-%d %H:%M:%S'))}；NLU 交叉验证：{e(report.pipeline)}，样本 {report.sample_size} 条，
准确率 {'—' if report.accuracy is None else f'{report.accuracy:.1%}'}。</p>
<h2>检查步骤</h2><table><tr><th>步骤</th><th>结果</th></tr>{rows}</table>
<h2>例句少于 {report.min_examples} 条的意图</h2>
<table><tr><th>意图</th><th>例句数</th></tr>{few or '<tr><td colspan=2>没有</td></tr>'}</table>
<h2>容易混淆的意图（超过 {report.threshold:.0%}）</h2>
<table><tr><th>意图</th><th>被判成</th><th>比例</th><th>例句</th></tr>{conf or '<tr><td colspan=4>没有</td></tr>'}</table>
<h2>每个意图的例句数</h2><table><tr><th>意图</th><th>例句数</th></tr>{counts}</table>
{outputs}
</body></html>
"""


def write_html(report: Report, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"check-{time.strftime('%Y%m%d-%H%M%S')}.html"
    text = render_html(report)
    path.write_text(text, encoding="utf-8")
    (directory / "check.html").write_text(text, encoding="utf-8")
    return path


def main(args: Any) -> int:
    from xiaoer.core.config import get_settings

    settings = get_settings()
    root = Path(args.root) if getattr(args, "root", None) else Path(settings.root)
    skip = tuple(s.strip() for s in (args.skip or "").split(",") if s.strip())
    unknown = [s for s in skip if s not in STEPS]
    if unknown:
        print(f"error: unknown step(s) {', '.join(unknown)} (steps: {', '.join(STEPS)})")
        return 2
    report = run_check(
        root, skip=skip, model=args.model, stories=args.stories,
        min_examples=args.min_examples, threshold=args.confusion,
        per_intent=args.per_intent, folds=args.folds, seed=args.seed,
        pipeline=args.nlu_pipeline, echo=lambda line: print(line, flush=True),
    )  # fmt: skip
    print()
    print(render_text(report), end="")
    reports = Path(args.html_dir) if args.html_dir else settings.data_dir / "reports"
    path = write_html(report, reports)
    print(f"HTML 报告：{path}")
    return 0 if report.ok or args.no_fail else 1
