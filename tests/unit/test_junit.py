"""junit.xml from the results: what CI shows of each check, valid XML whatever the evidence holds."""

import io
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from ibconform.report import junit


def result(outcome: str, message: str | None = None, evidence: tuple[str, ...] = ()) -> dict:
    return {"id": "test_sriov_numvfs[dgx001-ibp24s0]", "check": "sriov_numvfs", "node": "dgx001", "hca": "ibp24s0",
            "link": "kernel", "outcome": outcome, "message": message, "evidence": list(evidence), "remediation": None}


def parsed(results: list[tuple[dict, float | None]], counts: dict[str, int]) -> ET.Element:
    out = io.BytesIO()
    junit.write(out, results, counts, 1.5)
    return ET.fromstring(out.getvalue())


def test_a_passing_check_is_its_id_and_properties_only():
    root = parsed([(result("passed", evidence=("sriov_numvfs: '8'",)), 0.0012)], {"passed": 1})
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "0", "0", "0")
    (case,) = suite.iter("testcase")
    assert (case.get("classname"), case.get("name"), case.get("time")) == (
        "ibconform.kernel", "test_sriov_numvfs[dgx001-ibp24s0]", "0.001")
    assert {p.get("name"): p.get("value") for p in case.iter("property")} == {
        "check": "sriov_numvfs", "node": "dgx001", "hca": "ibp24s0", "link": "kernel"}
    assert [child.tag for child in case] == ["properties"]          # its evidence stays in results.json


def test_a_failure_carries_its_message_and_evidence():
    failed = result("failed", "sriov_numvfs of ibp24s0 expected 8 vs 0: ...", ("sriov_numvfs: '0'", "totalvfs: '16'"))
    skipped = {**result("skipped", "probe.level start: level rdma proves this"), "id": "test_rdma_uverbs[dgx001]"}
    root = parsed([(failed, None), (skipped, None)], {"failed": 1, "skipped": 1})
    failure, skip = root.iter("testcase")
    assert failure.find("failure").get("message") == failed["message"]
    assert failure.find("system-out").text == "sriov_numvfs: '0'\ntotalvfs: '16'"
    assert failure.get("time") is None
    assert skip.find("skipped").get("message") == skipped["message"]


@given(st.text(), st.text())
def test_any_evidence_or_message_gives_well_formed_xml(message, evidence):
    root = parsed([(result("error", message, (evidence,)), 0.0)], {"error": 1})
    case = root.find("testsuite/testcase")
    assert case.find("error") is not None
    if all(0x20 <= ord(c) < 0xD800 for c in message):     # text XML holds as it is comes back unchanged
        assert case.find("error").get("message") == message


@given(st.text())
def test_each_testcase_is_one_line_whose_name_reads_back(item_id):
    line = junit.testcase({**result("passed"), "id": item_id}, 0.5)
    assert line.count(b"\n") == 1 and line.endswith(b"</testcase>\n")
    assert junit.name_of(line) == junit.xml_text(item_id)
    assert ET.fromstring(line).get("name") == junit.xml_text(item_id)
