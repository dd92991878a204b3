"""What every parser's fuzz test shares: arbitrary text, built also from the format's own fragments, and the one
contract a parser keeps on it (a value, or ParseError with a one-line message and the raw text kept)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from hypothesis import strategies as st

from ibconform.errors import ParseError


def garbage(fragments: Sequence[str] = (), *, max_size: int = 200,
            extra: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """Any text, undecodable bytes decoded with replacement, the format's ``fragments`` in any order, ``extra``."""
    choices = [st.text(), st.binary(max_size=max_size).map(lambda b: b.decode("utf-8", "replace"))]
    if fragments:
        choices.append(st.lists(st.sampled_from(list(fragments)), max_size=max_size // 5).map("".join))
    if extra is not None:
        choices.append(extra)
    return st.one_of(*choices)


T = TypeVar("T")


def parsed_or_refused(parse: Callable[[str], T], text: str) -> T | None:
    """``parse(text)``, or None when it refused with ParseError (asserting its one line and the raw text kept);
    any other exception fails the test."""
    try:
        return parse(text)
    except ParseError as exc:
        assert exc.raw == text
        assert "\n" not in str(exc)
        return None


def assert_refused(parse: Callable[[str], object], text: str) -> None:
    """``parse`` refuses ``text`` with ParseError: one line, the raw text kept."""
    try:
        parse(text)
    except ParseError as exc:
        assert exc.raw == text
        assert "\n" not in str(exc)
        return
    raise AssertionError(f"{parse.__name__} accepted {text!r}")
