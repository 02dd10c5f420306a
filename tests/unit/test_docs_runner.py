"""The runner of the docs test: a wrong step or a promised output that does not appear
fails; the marker convention is parsed as docs/testing.md describes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xiaoer.devtools.docs import output_has, run_block, runnable_blocks, try_it_table

ROOT = Path(__file__).resolve().parents[2]

DOC = """# Doc

<!-- runnable -->
```bash
echo 店小二已启动
#> 已启动
false
echo never
```

```bash
rm -rf /   # not marked: never run
```

<!-- runnable: stack; stdin=你好\\n/quit -->
```bash
cat
#> 你好…/quit
```
"""


def blocks(tmp_path: Path):
    path = tmp_path / "doc.md"
    path.write_text(DOC, encoding="utf-8")
    return runnable_blocks(path)


def test_only_marked_blocks_are_found_with_their_options(tmp_path: Path):
    found = blocks(tmp_path)
    assert [b.line for b in found] == [4, 16]
    assert found[1].options == {"stack": "", "stdin": "你好\\n/quit"}
    assert found[1].stdin == "你好\n/quit\n"
    assert found[0].expected == ["已启动"]


def test_a_failing_step_fails_the_block(tmp_path: Path):
    outcome = run_block(blocks(tmp_path)[0], tmp_path, dict(os.environ))
    assert outcome.returncode != 0 and not outcome.ok
    assert "never" not in outcome.output  # the block stops at the wrong step


def test_promised_output_must_appear(tmp_path: Path):
    block = blocks(tmp_path)[1]
    assert run_block(block, tmp_path, dict(os.environ)).ok
    block.options["stdin"] = "再见"
    outcome = run_block(block, tmp_path, dict(os.environ))
    assert outcome.returncode == 0 and outcome.missing == ["你好…/quit"]


def test_output_wildcard():
    assert output_has("订单 6938271045123400002（…）已发货", "订单 6938271045123400002…已发货")
    assert not output_has("已发货 订单 6938271045123400002", "订单 6938271045123400002…已发货")


def test_a_marker_without_a_bash_block_is_an_error(tmp_path: Path):
    path = tmp_path / "doc.md"
    path.write_text("<!-- runnable -->\ntext\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must precede"):
        runnable_blocks(path)


def test_the_readme_try_it_table_parses_with_expectations():
    rows = try_it_table(ROOT / "README.md")
    assert len(rows) >= 15
    first = rows[0]
    assert first.conversations == [["帮我查下订单 6938271045123400002"]]
    cancel = next(r for r in rows if "帮我取消订单6938271045123400004" in r.conversations[0])
    assert cancel.conversations == [["帮我取消订单6938271045123400004", "0000", "确认取消"]]
    policies = next(r for r in rows if len(r.conversations) == 4)
    assert [g[1] for g in policies.groups()] == [["7天无理由"], ["15元"], ["不发"], ["09:00-22:00"]]
