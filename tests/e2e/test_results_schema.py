"""results.json validates against the schema shipped in docs/ — for a full run, a read-only run and an
interrupted one."""

import json
from pathlib import Path

import jsonschema
import pytest

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "results.schema.json").read_text())


@pytest.mark.parametrize("run", ["faults_probed", "faults_run"])
def test_results_json_matches_the_schema(run, request):
    document = json.loads((request.getfixturevalue(run).out / "results.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(document)


def test_the_schema_rejects_what_it_should():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert not validator.is_valid({"format": "ibconform-results/v1", "run": {}, "nodes": [], "results": []})
    bad = {"id": "x", "check": "c", "node": None, "hca": None, "link": "firmware", "outcome": "maybe",
           "message": None, "evidence": [], "remediation": None}
    assert not validator.is_valid({"format": "ibconform-results/v1", "run": {}, "nodes": [], "results": [bad]})
