"""``xiaoer check`` flags a planted confusion and an intent with too few examples
(fixture: tests/data/check_confusion), and writes its report to the terminal and HTML."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from xiaoer.devtools import check

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "check_confusion"


def test_check_flags_the_planted_confusion_and_few_examples() -> None:
    report = check.run_check(FIXTURE, skip=("validate", "stories"), per_intent=40, folds=3)
    pairs = {(a, b) for a, b, *_ in report.confusions}
    assert ("ask_coupon_fx", "ask_invoice_fx") in pairs
    # the clean intents are not confused with each other
    assert not pairs & {("ask_gift_fx", "ask_invoice_fx"), ("ask_invoice_fx", "ask_gift_fx")}
    assert report.few == [("ask_store_fx", 5)]
    assert not report.ok
    text = check.render_text(report)
    assert "ask_coupon_fx → ask_invoice_fx" in text and "ask_store_fx: 5 条" in text
    assert "结论：有问题需要处理" in text


def test_check_command_writes_html_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(
        root=str(FIXTURE), skip="validate,stories", model=None, stories="tests/test_stories.yml",
        min_examples=20, confusion=0.1, per_intent=40, folds=3, seed=42, nlu_pipeline="fast",
        html_dir=str(tmp_path), no_fail=False,
    )  # fmt: skip
    assert check.main(args) == 1
    out = capsys.readouterr().out
    assert "容易混淆的意图" in out
    html = (tmp_path / "check.html").read_text(encoding="utf-8")
    assert "ask_coupon_fx" in html and "ask_invoice_fx" in html and "结论：有问题需要处理" in html
    args.skip = "validate,stories,bogus"
    assert check.main(args) == 2


def test_clean_data_passes(tmp_path: Path) -> None:
    nlu = tmp_path / "data" / "nlu"
    nlu.mkdir(parents=True)
    source = (FIXTURE / "data" / "nlu" / "fixture.yml").read_text(encoding="utf-8")
    # only the two clean intents
    clean = source.split("- intent: ask_coupon_fx")[0]
    (nlu / "clean.yml").write_text(clean, encoding="utf-8")
    report = check.run_check(tmp_path, skip=("validate", "stories"))
    assert report.confusions == [] and report.few == [] and report.ok
