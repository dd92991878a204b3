"""Reading the captures in tests/samples/ for the parser tests.

Line 1 of each capture is its '# source:' comment; newer captures add '# version:' and '# what:' lines
right after it. Everything below them is the captured text, as published.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
_PROVENANCE = ("# version:", "# what:")
#: Marks the capture's publisher (or the index it came from) put where text was left out.
CUT_MARKS = ("[...]", "...")


def sample(name: str) -> str:
    """The captured text of tests/samples/<name>.txt without its provenance lines."""
    lines = (SAMPLES / f"{name}.txt").read_text().splitlines(keepends=True)
    assert lines and lines[0].startswith("# source:"), f"{name}.txt: line 1 should be its '# source:' comment"
    body = 1
    while body < len(lines) and lines[body].startswith(_PROVENANCE):
        body += 1
    return "".join(lines[body:])


def uncut(text: str) -> str:
    """The text without the lines that only mark a cut ('[...]', '...'): no tool prints them."""
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() not in CUT_MARKS)


def sections(text: str, separator: str) -> list[str]:
    """The parts of a text between lines that start with ``separator`` (the text before the first one is
    dropped)."""
    parts: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith(separator):
            parts.append([])
        elif parts:
            parts[-1].append(line)
    return ["".join(part) for part in parts]
