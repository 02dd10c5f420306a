"""The documentation's runnable parts, for the docs tests (docs/testing.md, "Docs that are
tested").

* Command blocks: a fenced ```` ```bash ```` block right after a line
  ``<!-- runnable -->`` is run by tests/e2e/test_docs.py as one ``bash -euo pipefail``
  script in a sandbox of the project (a fresh data folder). Options after a colon,
  separated by ``;``: ``stack`` (a test stack is running: ``$XIAOER_RASA_URL`` and
  ``localhost:5005`` point at it) and ``stdin=TEXT`` (the command's input; ``\\n`` for a
  new line). A line ``#> TEXT`` in the block is output the block must print (``…``
  stands for anything in between).
* The README's try-it table: each row's first cell holds the messages (in backticks;
  ``→`` continues the same conversation, ``/`` starts a new one), the second what the bot
  answers, with a hidden ``<!-- expect: A; B / C -->``: fragments the replies must
  contain (``;`` all of them; ``/`` one group per conversation, or one group for all;
  buttons count by their titles). Fragments must hold for every variation of a reply.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"^<!--\s*runnable(?::\s*(?P<options>.*?))?\s*-->\s*$")
FENCE = "```"


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    code: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def expected(self) -> list[str]:
        return [m.group(1).strip() for m in re.finditer(r"^\s*#>\s?(.*)$", self.code, re.M)]

    @property
    def stdin(self) -> str:
        text = self.options.get("stdin")
        return "" if text is None else text.replace("\\n", "\n") + "\n"


def runnable_blocks(path: Path) -> list[Block]:
    """The blocks of a Markdown file marked as runnable."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    for i, line in enumerate(lines):
        marker = MARKER.match(line.strip())
        if not marker:
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != f"{FENCE}bash":
            raise ValueError(f"{path.name}:{i + 1}: <!-- runnable --> must precede a ```bash block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == FENCE), None)
        if end is None:
            raise ValueError(f"{path.name}:{i + 2}: unclosed code block")
        options: dict[str, str] = {}
        for item in filter(None, (o.strip() for o in (marker["options"] or "").split(";"))):
            key, _, value = item.partition("=")
            options[key.strip()] = value.strip()
        blocks.append(Block(path, i + 2, "\n".join(lines[i + 2 : end]) + "\n", options))
    return blocks


def output_has(output: str, expected: str) -> bool:
    """Whether ``expected`` appears in ``output``, ``…`` matching anything."""
    pattern = ".*?".join(re.escape(part.strip()) for part in expected.split("…"))
    return re.search(pattern, output, re.S) is not None


@dataclass
class Outcome:
    returncode: int
    output: str
    missing: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.missing


def run_block(
    block: Block,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 300,
    replace: dict[str, str] | None = None,
) -> Outcome:
    """Run the block as one script (every command must succeed), then look for its
    ``#>`` lines in what it printed."""
    code = block.code
    for old, new in (replace or {}).items():
        code = code.replace(old, new)
    script = f"set -euo pipefail\n{code}"
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        input=block.stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    missing = [e for e in block.expected if not output_has(output, e)]
    return Outcome(proc.returncode, output, missing)


def sandbox(root: Path, where: Path) -> Path:
    """A folder that looks like the project (a link to each of its files and folders)
    with an empty ``var/``: relative paths in the docs (``.venv/bin/xiaoer``,
    ``var/api_token``) work and the data folder is fresh."""
    where.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name in {"var", ".git"}:
            continue
        os.symlink(entry, where / entry.name)
    (where / "var").mkdir(mode=0o700)
    return where


# --- the README's try-it table ----------------------------------------------------------
@dataclass
class TryIt:
    line: int
    conversations: list[list[str]]  # each: the messages of one conversation, in order
    expect: list[list[str]]  # fragment groups: one per conversation, or one for all

    def groups(self) -> list[tuple[list[str], list[str]]]:
        """(messages of one conversation, fragments its replies must contain) pairs; one
        group of fragments for several conversations applies to each of them."""
        if len(self.expect) == 1:
            return [(c, self.expect[0]) for c in self.conversations]
        if len(self.expect) != len(self.conversations):
            raise ValueError(
                f"README.md:{self.line}: {len(self.conversations)} conversations but "
                f"{len(self.expect)} groups of expected fragments"
            )
        return list(zip(self.conversations, self.expect, strict=True))


def try_it_table(readme: Path, heading: str = "试试说") -> list[TryIt]:
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading}"))
    rows: list[TryIt] = []
    for number, line in enumerate(lines[start + 2 :], start + 3):
        if not line.startswith("|"):
            break
        said, answer = line.strip().strip("|").split("|", 1)
        conversations = []
        for part in re.split(r"\s+/\s+", said):
            messages = re.findall(r"`([^`]+)`", part)
            if messages:
                conversations.append(messages)
        found = re.search(r"<!--\s*expect:\s*(.*?)\s*-->", answer)
        if not found:
            raise ValueError(f"README.md:{number}: try-it row without <!-- expect: … -->")
        expect = [
            [f.strip() for f in group.split(";") if f.strip()]
            for group in re.split(r"\s+/\s+", found.group(1))
        ]
        rows.append(TryIt(number, conversations, expect))
    return rows
