"""Parse ``FailedCreatePodSandBox`` event messages: which network's CNI ADD failed, and the CNI's words.

The message is kubelet's, wrapping the container runtime's, wrapping Multus', wrapping the plugin's::

    Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox
    "<64 hex>": plugin type="multus" name="multus-cni-network" failed (add): [<ns>/<pod>/<uid>:<net>]:
    error adding container to network "<net>": <the CNI plugin's own message>

(one line). Multus writes ``[<ns>/<pod>/<uid>:<net>]``; older releases ``[<ns>/<pod>:<net>]``; the
``plugin type="multus" ... failed (add): `` wrapper comes from the runtime's CNI library and is missing in
older captures. Terminal copies wrap the line at a fixed width, in the middle of words: the parser joins
the lines of one event before matching.

>>> failure = parse_sandbox_failure('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to '
...     'setup network for sandbox "88aee8b5e04d60a0fdfe9437888521e2f49a170b67ce574adf571f05f644bf74": '
...     '[default/test-sriov-ib-pod:example-sriov-ib-network]: error adding container to network '
...     '"example-sriov-ib-network": infiniBand SRI-OV CNI failed to configure VF "VF ib2 GUID is not valid"')
>>> failure.network, failure.pod
('example-sriov-ib-network', 'test-sriov-ib-pod')
>>> failure.cni_message
'infiniBand SRI-OV CNI failed to configure VF "VF ib2 GUID is not valid"'
>>> ib_sriov_cni_failure(failure.cni_message)
IbSriovCniFailure(kind='vf-guid-not-valid', vf='ib2', detail='VF ib2 GUID is not valid')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ibconform.errors import ParseError

# A row of 'kubectl describe' Events: '  Warning  FailedCreatePodSandBox  16s  kubelet  <message>'.
_EVENT_ROW = re.compile(r"\s*(?:Normal|Warning)\s+[A-Za-z]+\s")
_EVENT_COLUMNS = re.compile(r"\s*(?:Normal|Warning)\s+(?P<reason>[A-Za-z]+)\s+\S+(?: \(x[0-9]+ over \S+\))?\s+"
                            r"(?P<source>\S+)\s+")
_MARKERS = ("Failed to create pod sandbox", "failed to setup network for sandbox",
            "failed to set up sandbox container", "error adding container to network")
_SANDBOX_ID = re.compile(r'sandbox(?: container)? "(?P<id>[0-9a-f]{64})"')
_PLUGIN = re.compile(r'plugin type="(?P<type>[^"]*)"(?: name="(?P<name>[^"]*)")? failed \(add\): ')
_MULTUS = re.compile(r"\[(?P<ns>[^/\[\]:\s]*)/(?P<pod>[^/\[\]:\s]*)(?:/(?P<uid>[^/\[\]:\s]*))?:(?P<net>[^\[\]\s]*)\]: ")
_ADDING = re.compile(r'error adding container to network "(?P<net>[^"]*)": ')
_DESC = re.compile(r"desc = ")

_GUID_NOT_VALID = re.compile(r'infiniBand SRI-OV CNI failed to configure VF "VF (?P<vf>\S+) GUID is not valid"')
_CONFIGURE_VF = re.compile(r'infiniBand SRI-OV CNI failed to configure VF "(?P<detail>.*)"')
_IB_K8S = re.compile(r'infini[Bb]and SRIOV-CNI failed, (?P<detail>.*)')


@dataclass(frozen=True)
class SandboxFailure:
    """What a ``FailedCreatePodSandBox`` message says.

    ``network`` is the one Multus was adding (``error adding container to network "<net>"``) and
    ``cni_message`` the plugin's own words after it; without that clause (a failure before any network
    was added), ``network`` is ``None`` and ``cni_message`` is the innermost text the parser could reach.
    ``cni_plugin`` is the ``plugin type=...`` of the runtime's wrapper (``multus``), ``None`` without one.
    """

    sandbox_id: str | None
    cni_plugin: str | None
    namespace: str | None
    pod: str | None
    pod_uid: str | None
    network: str | None
    cni_message: str
    raw: str


@dataclass(frozen=True)
class IbSriovCniFailure:
    """An ib-sriov-cni ADD error, by kind: ``vf-guid-not-valid`` (the VF's GUID is unset: ``vf`` names its
    netdev), ``configure-vf`` (another VF configuration failure), ``ib-kubernetes`` (ib-kubernetes has not
    marked the pod, or gave no GUID)."""

    kind: str
    vf: str | None
    detail: str


def parse_sandbox_failure(text: str) -> SandboxFailure:
    """Parse one ``FailedCreatePodSandBox`` message: the event's ``message``, or a terminal copy of it
    (wrapped, with or without ``kubectl describe``'s columns, among other events).

    Raises ``ParseError`` when no sandbox failure is in the text.
    """
    message = _failure_event(text)
    if message is None:
        raise ParseError("FailedCreatePodSandBox: no 'Failed to create pod sandbox' or 'error adding container to "
                         "network' in the text", raw=text)
    sandbox = _SANDBOX_ID.search(message)
    plugin = _PLUGIN.search(message)
    multus = _MULTUS.search(message)
    adding = _ADDING.search(message)
    if adding:
        network, cni_message = adding["net"], message[adding.end():]
    else:
        network = None
        last = max((m.end() for m in (sandbox, plugin, multus, _last(_DESC, message)) if m), default=0)
        cni_message = message[last:].lstrip(": ")
    return SandboxFailure(sandbox_id=sandbox["id"] if sandbox else None, cni_plugin=plugin["type"] if plugin else None,
                          namespace=multus["ns"] or None if multus else None,
                          pod=multus["pod"] or None if multus else None,
                          pod_uid=multus["uid"] or None if multus else None,
                          network=network, cni_message=cni_message.strip(), raw=text)


def ib_sriov_cni_failure(message: str) -> IbSriovCniFailure | None:
    """Classify an ib-sriov-cni error text (a ``cni_message``); ``None`` when it is not one.

    >>> ib_sriov_cni_failure('infiniBand SRIOV-CNI failed, InfiniBand status "mellanox.infiniband.app" is not '
    ...                      '"configured" please check mellanox ib-kubernetes').kind
    'ib-kubernetes'
    """
    text = " ".join(message.split())
    if match := _GUID_NOT_VALID.search(text):
        return IbSriovCniFailure(kind="vf-guid-not-valid", vf=match["vf"], detail=f"VF {match['vf']} GUID is not valid")
    if match := _CONFIGURE_VF.search(text):
        return IbSriovCniFailure(kind="configure-vf", vf=None, detail=match["detail"])
    if match := _IB_K8S.search(text):
        return IbSriovCniFailure(kind="ib-kubernetes", vf=None, detail=match["detail"])
    return None


def _failure_event(text: str) -> str | None:
    """The joined text of the event that reports the sandbox failure, its describe columns dropped."""
    events: list[list[str]] = [[]]
    for line in text.splitlines():
        if _EVENT_ROW.match(line) and events[-1]:
            events.append([])
        events[-1].append(line)
    for lines in events:
        joined = "".join(lines)  # a terminal wrap breaks words: join without a separator
        if not any(marker in joined for marker in _MARKERS):
            continue
        columns = _EVENT_COLUMNS.match(joined)
        return joined[columns.end():] if columns else joined.strip()
    return None


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(text):  # noqa: B007 - keep the last
        pass
    return found
