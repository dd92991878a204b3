"""results.json and junit.xml: one entry per check item, written by the pytest controller at session end.

Schema (docs/results.schema.json): ``{"run": {...}, "results": [{"check", "node", "hca", "outcome", "message",
"evidence", "remediation"}]}``. Items carry ``check``, ``node``, ``hca`` and ``evidence`` user
properties (set by the suite's fixtures, also under pytest-xdist) and ``message`` on failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ibconform.bundle import now
from ibconform.report import junit, remediation, rootcause

RESULTS_FORMAT = "ibconform-results/v1"
# item node id -> its index in collection order (items may run in another order; results keep this one)
COLLECTION_ORDER = pytest.StashKey[dict[str, int]]()


def message_of(excinfo: pytest.ExceptionInfo) -> str:
    """The one-line message of a check's exception (its first line; the type name if it has none)."""
    text = str(excinfo.value).strip()
    first = text.splitlines()[0] if text else ""
    return first or excinfo.typename


def outcome_of(report: pytest.TestReport) -> str | None:
    """passed / failed / error / skipped for the phase that decides; None for phases that do not."""
    if report.skipped:
        return "skipped"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return "passed" if report.when == "call" else None


class ResultsRecorder:
    """Pytest plugin: gathers every item's verdict and writes results.json and junit.xml (``report.junit``).

    ``run`` gives the run's metadata when the session ends (the bundle may be written meanwhile).
    """

    def __init__(self, out_dir: Path, run: Callable[[], dict]) -> None:
        self.out_dir = out_dir
        self.run_metadata = run
        self.started: str | None = None
        self.entries: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}   # item node id -> its phases' duration

    def pytest_sessionstart(self) -> None:
        self.started = now()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        self.seconds[nodeid] = self.seconds.get(nodeid, 0.0) + report.duration
        outcome = outcome_of(report)
        if outcome is None:   # a passed set-up or teardown (two of an item's three reports)
            return
        props = report.user_properties
        entry = self.entries.get(nodeid)
        if entry is None:
            meta = {k: v for k, v in props if k in ("check", "node", "hca", "link")}
            entry = self.entries[nodeid] = {
                "id": nodeid.split("::")[-1], "check": meta.get("check"), "node": meta.get("node"),
                "hca": meta.get("hca"), "link": meta.get("link"), "outcome": None, "message": None, "evidence": [],
                "remediation": None}
        elif entry["outcome"] in ("failed", "error"):
            return
        entry["outcome"] = outcome
        entry["evidence"] = [v for k, v in props if k == "evidence"]
        measured = {k: v for key, m in props if key == "measurement" and isinstance(m, dict) for k, v in m.items()}
        if measured:
            entry["measurements"] = measured
        message = next((v for k, v in props if k == "message"), None)
        if outcome == "skipped" and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2]).removeprefix("Skipped: ")
        entry["message"] = message
        remedy = remediation.lookup(entry["check"] or "", message or "") if outcome in ("failed", "error") else None
        entry["remediation"] = None if remedy is None else {
            "id": remedy.id, "action": remedy.action, "reference": remedy.reference}

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        order = session.config.stash.get(COLLECTION_ORDER, {})
        ranked = sorted(self.entries.items(), key=lambda kv: order.get(kv[0], len(order)))
        results = [e for _, e in ranked]
        counts = {o: sum(e["outcome"] == o for e in results) for o in ("passed", "failed", "error", "skipped")}
        run = {**self.run_metadata(), "started": self.started, "finished": now(), "exit_status": int(exitstatus),
               "counts": counts}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        document = {"format": RESULTS_FORMAT, "run": run, "nodes": rootcause.node_verdicts(results),
                    "results": results}
        (self.out_dir / "results.json").write_text(one_result_per_line(document))
        with open(self.out_dir / "junit.xml", "wb") as out:
            junit.write(out, [(e, self.seconds.get(nodeid)) for nodeid, e in ranked], counts,
                        sum(self.seconds.values()))


def one_result_per_line(document: dict) -> str:
    """``document`` as JSON with each result on a line of its own: greppable by node or check, and written
    by json's C encoder (indented output takes its pure-Python one: a quarter second at 24,000 results)."""
    head = json.dumps({**document, "results": []}, indent=2)
    lines = ",\n".join(json.dumps(result) for result in document["results"])
    return head.removesuffix("[]\n}") + ("[\n" + lines + "\n]\n}\n" if lines else "[]\n}\n")
