"""The fenced code blocks of README.md and docs/*.md, and how the tests answer for each.

Every block is one of: executed (a Python or shell block, run by the test named for its
document or section), validated (a JSON body with an `<!-- openapi: METHOD PATH request |
response STATUS -->` comment right above it, checked against the live `/openapi.json`),
checked (a function of tests/support/doc_checks.py compares it with the code or a real run), or
allow-listed here with the reason it cannot be. A block that is none of these fails
tests/ops/test_docs.py, so a new example is tested from the day it is written.

Blocks are named by document and first line (stable when other blocks move); `#N` in
messages is the block's place in its document.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXECUTABLE = {"python": "python", "sh": "sh", "bash": "sh", "shell": "sh"}
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w-]*)\s*$")  # indented ones too
_MARKER = re.compile(r"^<!--\s*(.*?)\s*-->$")
_OPENAPI = re.compile(r"^openapi:\s+(GET|POST|PATCH|PUT|DELETE)\s+(\S+)\s+"
                      r"(request|response\s+\d{3})$")

# Who runs the executable blocks: a document's runner, or a section's (its `## ` heading).
RUNNERS = {
    ("README.md", "Quickstart"): "tests/ops/test_run_command.py (as written, on ./scripts/run)",
    ("README.md", None): "tests/ops/test_docs.py::test_readme_examples",
    ("docs/USAGE.md", None): "tests/ops/test_docs.py::test_usage_examples",
    ("docs/receiving.md", None): "tests/ops/test_docs.py::test_receiving_examples",
    ("docs/operations.md", None): "tests/ops/test_docs.py::test_operations_examples",
}

# The blocks no test runs or checks, each with its reason. Keep it short.
ALLOW_LIST = {
    ("README.md", "./scripts/test"):
        "runs the whole suite, this test included: CI runs it",
}


@dataclasses.dataclass(frozen=True)
class Block:
    document: str  # relative to the checkout: README.md, docs/USAGE.md
    number: int  # its place among the document's blocks, from 1
    language: str
    code: str
    section: str | None  # the `## ` heading it is under
    marker: str | None  # the HTML comment on the line right above the fence

    @property
    def first_line(self) -> str:
        return self.code.split("\n", 1)[0].strip()

    @property
    def key(self) -> tuple[str, str]:
        return self.document, self.first_line

    def __str__(self) -> str:
        return f"{self.document}#{self.number} ({self.language or 'no language'}: " \
               f"{self.first_line[:60]!r})"


@dataclasses.dataclass(frozen=True)
class Classification:
    kind: str  # executed, validated, checked, allow-listed
    how: str


class DocumentError(ValueError):
    """A fence that never closes (the rest of the document would be code)."""


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def parse(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced blocks of one Markdown file, as CommonMark reads them: a closing fence is
    a line of the opening's backticks (or tildes) only, at least as many."""
    name = path.relative_to(root).as_posix()
    blocks, section, previous = [], None, ""
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        opening = _FENCE.match(line)
        if opening:
            ticks, language = opening.groups()
            end = next((j for j in range(index + 1, len(lines))
                        if re.fullmatch(rf"\s*{ticks[0]}{{{len(ticks)},}}\s*", lines[j])), None)
            if end is None:
                raise DocumentError(f"{name}:{index + 1}: the fence opened here never closes")
            marker = _MARKER.match(previous.strip())
            blocks.append(Block(name, len(blocks) + 1, language,
                                "\n".join(lines[index + 1:end]) + "\n", section,
                                marker.group(1) if marker else None))
            index, previous = end + 1, ""
            continue
        previous = line
        index += 1
    return blocks


def all_blocks(root: Path = ROOT) -> list[Block]:
    return [block for path in documents(root) for block in parse(path, root)]


def openapi_target(block: Block) -> tuple[str, str, str, str | None] | None:
    """(method, path, 'request' | 'response', status) from the block's openapi comment."""
    match = _OPENAPI.match(block.marker or "")
    if not match:
        return None
    method, path, part = match.groups()
    part, _, status = part.partition(" ")
    return method.lower(), path, part, status.strip() or None


def runner(block: Block) -> str | None:
    return RUNNERS.get((block.document, block.section)) or RUNNERS.get((block.document, None))


def classify(block: Block, checks: dict[tuple[str, str], Callable]) -> Classification | None:
    """How the tests answer for `block`; None when nothing does."""
    if block.key in ALLOW_LIST:
        return Classification("allow-listed", ALLOW_LIST[block.key])
    if block.key in checks:
        return Classification("checked",
                              f"tests/support/doc_checks.py::{checks[block.key].__name__}")
    if block.language in EXECUTABLE and runner(block):
        return Classification("executed", runner(block))
    if block.language == "json" and openapi_target(block):
        return Classification("validated", block.marker)
    return None


def problems(blocks: list[Block], checks: dict[tuple[str, str], Callable]) -> list[str]:
    """What makes the classification fail: unclassified blocks, and names in the allow-list
    or the checks that name no block or more than one (a stale or ambiguous entry)."""
    found = [f"{block}: not executed, validated, checked nor allow-listed"
             for block in blocks if classify(block, checks) is None]
    keys = [block.key for block in blocks]
    for key in [*ALLOW_LIST, *checks]:
        if keys.count(key) != 1:
            found.append(f"{key} names {keys.count(key)} blocks, not one")
    return found


def executed_by(document: str, blocks: Iterable[Block],
                checks: dict[tuple[str, str], Callable]) -> list[Block]:
    """The blocks of `document` its runner must run, in document order."""
    name = RUNNERS[(document, None)]
    return [block for block in blocks if block.document == document
            and classify(block, checks) == Classification("executed", name)]
