"""Issue 4's acceptance on the faults twin: per node the right root cause (earliest broken link), the
right remediation, and the downstream failures listed under it — in results.json and in the summary."""

from __future__ import annotations

import pytest

# node -> (link, check, affected, remediation id, downstream failures) ; None: the node passes
ROOT_CAUSES = {
    "dgx001": None,
    "dgx002": ("firmware", "firmware_vfs_committed", "8/8 HCAs", "firmware-change-pending", 34),
    "dgx003": ("firmware", "firmware_vfs_committed", "8/8 HCAs", "mstconfig-nv-access", 41),
    "dgx004": ("kernel", "sriov_numvfs", "1/8 HCAs", "vfs-not-created", 11),
    "dgx005": ("kernel", "excluded_device_has_no_vfs", None, "excluded-device-has-vfs", 0),
    "dgx006": ("ports", "ib_port_active", "1/8 HCAs", "ib-port-degraded", 1),
    "dgx007": ("node", "node_identity", None, "node-unreachable", 104),
    "dgx008": ("node", "node_identity", None, "node-unreachable", 104),
    "dgx009": None,
    "dgx010": ("firmware", "firmware_vfs_committed", "1/8 HCAs", "mstconfig-hung", 13),
    "dgx011": ("firmware", "firmware_vfs_committed", "1/8 HCAs", "mstconfig-open-failed", 13),
    "dgx012": ("ports", "ib_port_active", "1/8 HCAs", "ib-port-degraded", 0),
    "dgx013": ("firmware", "firmware_version_consistent", None, "firmware-version-mixed", 0),
    "dgx014": ("firmware", "firmware_sriov_enabled", "1/8 HCAs", "firmware-sriov-settings", 13),
    "dgx015": ("firmware", "firmware_link_type", "1/8 HCAs", "firmware-sriov-settings", 1),
    "dgx016": None,
    "dgx017": ("workload", "probe_scheduled", None, "probe-unschedulable", 0),
    "dgx018": ("device-plugin", "policy_matches_inventory", "1/8 HCAs", "policy-drift", 0),
    "dgx019": ("operator", "node_state_synced", None, "operator-sync-failed", 9),
    "dgx020": ("workload", "probe_scheduled", None, "probe-not-admitted", 0),
    "dgx021": ("vfs", "vf_guids_set", "1/8 HCAs", "vf-guid-zero", 3),   # its VF port INIT, CNI ADD refuses the VF
    "dgx022": ("vfs", "vf_guids_unique", "1/8 HCAs", "vf-guid-duplicate", 0),
    "dgx023": ("vfs", "vf_guids_unique", "1/8 HCAs", "vf-guid-duplicate", 0),         # the other half of the pair
    "dgx024": ("vfs", "vfs_bound", "1/8 HCAs", "vf-unbound", 0),
    "dgx025": ("vfs", "vf_ports_active", "8/8 HCAs", "sm-without-virtualization", 7),
    "dgx026": ("vfs", "rdma_netns_mode", None, "rdma-netns-mode", 0),
    # at the default probe level start; the rdma and nccl faults: tests/e2e/test_probe_levels.py
    "dgx027": ("attach", "attach_network_defined", None, "network-attachment-missing", 1),
    "dgx028": ("attach", "attach_sandbox_created", None, "vf-guid-invalid", 1),
    **dict.fromkeys(("dgx029", "dgx030", "dgx031", "dgx032", "dgx033")),
}


@pytest.fixture(scope="module")
def verdicts(faults_probed):
    import json
    document = json.loads((faults_probed.out / "results.json").read_text())
    return {n["name"]: n for n in document["nodes"]}


def test_every_node_has_its_root_cause_and_remediation(verdicts):
    assert set(verdicts) == set(ROOT_CAUSES)
    for name, expected in ROOT_CAUSES.items():
        node = verdicts[name]
        if expected is None:
            assert node["verdict"] == "pass" and node["root_cause"] is None, node
            continue
        link, check, affected, remedy, downstream = expected
        root = node["root_cause"]
        assert node["verdict"] == "fail"
        assert (root["link"], root["check"], root["affected"], root["remediation"]) == (link, check, affected, remedy), name
        assert len(node["consequences"]) == downstream, (name, node["consequences"])


def test_the_seed_incident_reads_as_one_cause_with_its_consequences(verdicts, faults_probed):
    node = verdicts["dgx002"]
    downstream = {faults_probed.results[i]["check"] for i in node["consequences"]}
    # firmware pending -> no VFs -> operator waits for a reboot -> nothing advertised -> probe cannot schedule
    assert downstream == {"firmware_vfs_committed", "sriov_numvfs", "vfs_bound", "node_state_synced",
                          "node_state_idle", "resource_allocatable", "probe_scheduled"}
    assert "power-cycle" in node["root_cause"]["message"]


def test_the_terminal_summary_names_each_root_cause(faults_probed):
    lines = {line.split(":", 1)[0]: line for line in faults_probed.stdout.splitlines() if line.startswith("dgx")}
    assert lines["dgx001"] == "dgx001: PASS (level start proven)"
    assert lines["dgx002"].startswith("dgx002: FAIL [firmware] firmware_vfs_committed on 8/8 HCAs: NUM_OF_VFS on ibp24s0")
    assert lines["dgx002"].endswith("(+34 downstream)")
    assert lines["dgx007"].startswith("dgx007: FAIL [node] node_identity: dgx007 unreachable: ")


def test_the_html_report_names_each_root_cause_under_its_remediation(faults_probed, verdicts):
    import html

    from ibconform.report.remediation import catalogue

    page = (faults_probed.out / "report.html").read_text()
    actions = {r.id: html.escape(r.action) for r in catalogue()}
    for name, expected in ROOT_CAUSES.items():
        anchor = page.find(f'<span id="rc-{name}"></span>')
        if expected is None:
            assert anchor == -1, f"{name} passes but has a root-cause entry"
            continue
        assert anchor != -1, f"no root-cause entry for {name}"
        article = page[anchor:page.find("</article>", anchor)]
        assert html.escape(verdicts[name]["root_cause"]["message"], quote=False) in article \
            or html.escape(verdicts[name]["root_cause"]["message"]) in article, name
        # the remediation shown for the group this node sits in is the catalogue entry of its root cause
        group_start = max(page.rfind(action, 0, anchor) for action in actions.values())
        shown = next(rid for rid, action in actions.items() if page.rfind(action, 0, anchor) == group_start)
        assert shown == expected[3], (name, shown)
