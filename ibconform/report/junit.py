"""junit.xml for CI: one testcase per check item, made from the results (``ResultsRecorder``) and streamed.

pytest's junitxml plugin would hold an element tree of every item's properties, its evidence included, until the
session ends (about a sixth of an evaluation's memory and CPU at 35,000 items); the results already hold what CI
shows. A testcase is ``classname`` ``ibconform.<link>``, ``name`` the check's id, properties ``check``, ``node``,
``hca``, ``link``; one that did not pass has its ``failure``, ``error`` or ``skipped`` with the one-line message,
and its evidence as ``system-out``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import unescape
from typing import BinaryIO
from xml.sax.saxutils import escape

from ibconform.bundle import now

VERDICT_TAGS = {"failed": "failure", "error": "error", "skipped": "skipped"}
PROPERTIES = ("check", "node", "hca", "link")
# characters XML 1.0 cannot hold at all, escaped or not (evidence is untrusted text from the nodes)
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# what escape() leaves that a parser would not give back: quotes in attributes, and whitespace it normalizes
_TEXT_ENTITIES = {"\r": "&#13;"}
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_CASE = re.compile(rb'<testcase classname="[^"]*" name="([^"]*)"')


def xml_text(value: object) -> str:
    """``value`` as text XML can hold: a character it cannot is written ``#xNN``."""
    return _NOT_XML.sub(lambda m: f"#x{ord(m.group()):02X}", str(value))


def _attr(value: object) -> str:
    return escape(xml_text(value), _ATTR_ENTITIES)


def testcase(result: dict, seconds: float | None = None) -> bytes:
    """The testcase of one result of results.json: one line of XML (a fleet has hundreds of thousands: built as
    text, at a tenth of an element tree's cost)."""
    classname = _attr(f"ibconform.{result.get('link') or 'cluster'}")
    took = f' time="{seconds:.3f}"' if seconds is not None else ""
    props = "".join(f'<property name="{key}" value="{_attr(result[key])}" />' for key in PROPERTIES
                    if result.get(key) is not None)
    verdict = ""
    tag = VERDICT_TAGS.get(result.get("outcome") or "")
    if tag is not None:
        verdict = f'<{tag} message="{_attr(result.get("message") or "")}" />'
        if result.get("evidence"):
            evidence = xml_text("\n".join(map(str, result["evidence"])))
            verdict += f"<system-out>{escape(evidence, _TEXT_ENTITIES)}</system-out>"
    line = (f'<testcase classname="{classname}" name="{_attr(result["id"])}"{took}><properties>{props}'
            f"</properties>{verdict}</testcase>\n")
    return line.encode()


def name_of(line: bytes) -> str | None:
    """The name of the testcase a line of a junit.xml written by ``write`` holds; None for any other line."""
    found = _CASE.match(line)
    return unescape(found.group(1).decode(errors="replace")) if found else None


def head(tests: int, counts: dict[str, int], seconds: float | None = None) -> bytes:
    """The XML declaration and the open ``testsuites``/``testsuite`` elements; ``TAIL`` closes them."""
    suite = ET.Element("testsuite", name="ibconform", tests=str(tests), failures=str(counts.get("failed", 0)),
                       errors=str(counts.get("error", 0)), skipped=str(counts.get("skipped", 0)), timestamp=now())
    if seconds is not None:
        suite.set("time", f"{seconds:.3f}")
    text = ET.tostring(suite, encoding="unicode").removesuffix(" />")
    return f"<?xml version='1.0' encoding='utf-8'?>\n<testsuites name=\"ibconform\">{text}>\n".encode()


TAIL = b"</testsuite></testsuites>\n"


def write(out: BinaryIO, results: list[tuple[dict, float | None]], counts: dict[str, int],
          seconds: float | None = None) -> None:
    """A testsuite of ``results`` (each with its seconds) to ``out``, one testcase at a time."""
    out.write(head(len(results), counts, seconds))
    for result, took in results:
        out.write(testcase(result, took))
    out.write(TAIL)
