"""results.json on disk: valid JSON, and one line per result (greppable by node or check)."""

import json

import pytest

from ibconform.report.results import one_result_per_line

RESULTS = [{"id": "test_a[dgx001-ib0]", "node": "dgx001", "message": "two\nlines"}, {"id": "test_b", "node": None}]


@pytest.mark.parametrize("results", [RESULTS, []], ids=["results", "none"])
def test_results_file_is_the_document(results):
    document = {"format": "ibconform-results/v1", "run": {"counts": {"passed": 1}}, "nodes": [{"name": "dgx001"}],
                "results": results}
    text = one_result_per_line(document)
    assert json.loads(text) == document
    assert text.endswith("}\n")
    assert [line for line in text.splitlines() if "dgx001-ib0" in line] == [json.dumps(RESULTS[0]) + ","] * bool(results)
