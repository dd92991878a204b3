"""Smoke test of the fleet benchmark (benchmarks/fleet.py): it runs on a small twin and reports every key
with sane values: one SSH session per node, the same LIST count at 2 and 4 nodes, the floor the faster
of its two measures, the naive run extrapolated from the nodes it ran on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

FLEET = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"
KEYS = {"nodes", "suite_s", "suite_read_only_s", "floor_s", "floor_clush_s", "floor_paramiko_s", "naive_s",
        "suite_over_floor", "naive_over_suite", "ssh_sessions_per_node", "api_lists", "peak_rss_mb", "report_mb",
        "transports_identical", "mst_latency_s", "machine"}


def fleet(tmp_path: Path, nodes: int, *extra: str) -> dict:
    out = tmp_path / f"fleet-{nodes}.json"
    try:
        proc = subprocess.run([sys.executable, str(FLEET), "--nodes", str(nodes), "--mst-latency", "0.05",
                               "--json", str(out), "--child-timeout", "50", *extra],
                              capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:     # say which measurement hung
        pytest.fail(f"fleet.py over {exc.timeout} s; its progress:\n{(exc.stderr or b'').decode()[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result    # printed and written alike
    return result


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return fleet(tmp_path_factory.mktemp("fleet"), 4, "--naive-max-nodes", "2", "--shards", "4")


def test_every_key_with_sane_values(four):
    assert four.keys() >= KEYS
    assert four["nodes"] == 4 and four["mst_latency_s"] == 0.05
    for key in ("suite_s", "suite_read_only_s", "floor_clush_s", "floor_paramiko_s", "naive_s"):
        assert 0.05 < four[key] < 60, key
    assert four["floor_s"] == min(four["floor_clush_s"], four["floor_paramiko_s"])
    assert four["suite_over_floor"] == pytest.approx(four["suite_s"] / four["floor_s"], rel=0.01)
    assert four["suite_over_floor_each"] == [pytest.approx(four["suite_over_floor"], rel=0.01)]  # one repeat
    assert four["naive_over_suite"] == pytest.approx(four["naive_s"] / four["suite_s"], rel=0.01)
    assert 20 < four["peak_rss_mb"] < 1000
    assert 0 < four["report_mb"] < 15
    assert four["machine"]["cores"] == os.cpu_count()
    assert four["machine"]["python"] == platform.python_version()


def test_results_identical_over_ssh_and_config_daemon_exec(four):
    assert four["transports_identical"] is True
    run = four["details"]["config_daemon"]
    assert run["exit_code"] == 0 and run["items"] == four["details"]["items"] and run["differing_items"] == []
    assert run["ssh_sessions"] == {"min": 0, "max": 0}
    # one exec per node; the read-only run's own LIST of pods and one of the config-daemon pods
    assert run["api_by_verb"]["create pods/exec"] == 4 and run["api_by_verb"]["list pods"] == 2


def test_one_ssh_session_per_node(four):
    assert four["ssh_sessions_per_node"] == 1
    ssh = four["details"]["ssh"]
    for part in ("suite", "suite_read_only", "clush", "paramiko"):
        assert ssh[part]["sessions"] == {"min": 1, "max": 1}, part
        assert ssh[part]["logins"] == {"min": 1, "max": 1}, part
    assert ssh["naive"]["sessions"]["min"] > 8    # one command per check per HCA


def test_suite_passes_on_the_healthy_twin(four):
    details = four["details"]
    # at the default probe level start, the rdma and nccl checks (4 + 3 per node) are skipped, all else passes
    assert details["outcomes"]["skipped"] == 4 * 7, details["not_passed"]
    assert details["outcomes"]["passed"] == details["items"] - 4 * 7 > 0, details["not_passed"]
    assert details["phases"]["evaluation_after_collection_s"] >= 0 and details["report"]["bytes"] > 0
    alone = details["evaluation_alone"]
    assert alone["exit_code"] == 0 and alone["items"] == details["items"]
    assert alone["ms_per_item"] == pytest.approx(1000 * alone["seconds"] / details["items"], rel=0.01)


def test_naive_extrapolated_from_the_nodes_it_ran_on(four):
    settings, naive = four["settings"], four["details"]["naive"]
    assert settings["naive_extrapolated"] and settings["naive_nodes_measured"] == 2
    assert settings["hcas_per_node"] == 8 and settings["excluded_per_node"] == 3
    assert naive["outcomes"]["passed"] == 2 * (6 * 8 + 3)
    assert naive["seconds"] == pytest.approx(naive["fixed_seconds"] + 4 * naive["per_node_seconds"])
    assert "extrapolated" in four["notes"]["naive_s"]


def test_api_lists_independent_of_node_count_and_of_the_shard_count(four, tmp_path):
    two = fleet(tmp_path, 2, "--skip-naive", "--shards", "2")
    assert two["api_lists"] == four["api_lists"] > 0
    assert two["naive_s"] is None and two["naive_over_suite"] is None
    # the fleet Job: the snapshot LISTs once, whatever the shards; the shards LIST nothing
    assert two["fleet_job"]["api_lists"] == four["fleet_job"]["api_lists"] == four["details"]["api_lists_read_only"]


def test_the_fleet_job_gives_the_single_runs_verdicts(four):
    job = four["fleet_job"]
    assert job["shards"] == 4 and len(job["index_s"]) == 4 and job["differing_items"] == []
    assert 0 < job["report_mb"] < 1 and 20 < job["peak_rss_mb"] < 1000
    assert job["report_render_s"] is not None and job["report_render_s"] > 0
