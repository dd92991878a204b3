"""``pods/<name>/exec`` for the twin's API server, answered as kube-apiserver and the node's kubelet answer it.

A websocket upgrade (``GET``, or ``POST``) with subprotocol ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``; every
message is one channel byte and data: 0 stdin, 1 stdout, 2 stderr, 3 the final ``Status`` (Success, or Failure
with reason NonZeroExitCode and cause ExitCode, as the kubelet writes it), and in v5 only 255 + a channel from the
client to close that stream. The command runs on the node the pod is bound to: inside that node's namespaces
(``Kubelet.enter``), as it would in a privileged hostPID pod there. A node whose address refuses connections or
never answers fails the way kube-apiserver fails to reach its kubelet: for v4 before the upgrade (kube-apiserver
proxies v4 to the kubelet), for v5 after it (kube-apiserver upgrades, then dials the kubelet).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp.web
from multidict import MultiMapping

from ibconform.twin.apiserver.request import RequestRecord
from ibconform.twin.apiserver.store import ApiError, bad_request
from ibconform.twin.machines import cpu

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255
KUBELET_PORT = 10250
#: The environment of a command run in a node, as in a container whose image sets only PATH.
NODE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go's strconv.ParseBool


@dataclass(frozen=True)
class Kubelet:
    """How the API server reaches a node's kubelet: ``enter`` is the argv prefix that runs a command inside the
    node; ``fault`` how the node's address fails instead (``refused``: nothing listens, ``hung``: TCP accepted,
    never an answer)."""

    address: str
    enter: tuple[str, ...] = ()
    fault: Literal["refused", "hung"] | None = None
    cpu_group: bytes | None = None  # the node processes' cgroup.procs (``machines.cpu``)


@dataclass(frozen=True)
class ExecRequest:
    """A pods/exec request, validated against its pod."""

    command: tuple[str, ...]
    container: str
    node: str
    stdin: bool
    stdout: bool
    stderr: bool


def exec_request(pod: Mapping[str, Any], query: MultiMapping[str]) -> ExecRequest:
    """The request's options, checked as kube-apiserver checks them (ApiError 400 in its words); the pod must be
    Running on a node."""
    name = str((pod.get("metadata") or {}).get("name"))
    command = tuple(query.getall("command", ()))
    if not command:
        raise bad_request("you must specify at least 1 command")
    stdin, stdout, stderr = (query.get(flag, "") in _TRUE for flag in ("stdin", "stdout", "stderr"))
    if not (stdin or stdout or stderr):
        raise bad_request("you must specify at least one of stdin, stdout, stderr")
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or () if isinstance(c, dict)]
    container = query.get("container") or ""
    if not container:
        if len(containers) != 1:
            raise bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
            )
        container = containers[0]
    elif container not in containers:
        raise bad_request(f"container {container} is not valid for pod {name}")
    node = spec.get("nodeName")
    if not node:
        raise bad_request(f"pod {name} does not have a host assigned")
    if status.get("phase") != "Running":
        raise bad_request(
            f"pod {name} is not running (phase {status.get('phase') or 'Pending'}): "
            f"cannot exec into container {container}"
        )
    return ExecRequest(command, container, str(node), stdin, stdout, stderr)


def exit_status(code: int, command: tuple[str, ...]) -> dict[str, Any]:
    """The kubelet's final Status for a command that exited with ``code`` (containerd's wording)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def dial_error(kubelet: Kubelet) -> str:
    return f"error dialing backend: dial tcp {kubelet.address}:{KUBELET_PORT}: connect: connection refused"


async def serve(
    raw: aiohttp.web.BaseRequest, request: ExecRequest, kubelet: Kubelet, record: RequestRecord
) -> aiohttp.web.StreamResponse:
    """Upgrade to a websocket and run the command on the node, streaming its output; a node that cannot be
    reached fails before (v4) or after (v5) the upgrade. ``record`` shows the upgrade (101) once it is sent."""
    ws = aiohttp.web.WebSocketResponse(protocols=(V5, V4), timeout=2.0)
    ready = ws.can_prepare(raw)
    if not ready.ok:
        raise bad_request("Upgrade request required")
    if ready.protocol not in (V5, V4):
        raise bad_request(f"websocket subprotocol: expected {V5} or {V4}")
    if ready.protocol == V4 and kubelet.fault == "refused":
        raise ApiError(500, "", dial_error(kubelet))
    if ready.protocol == V4 and kubelet.fault == "hung":
        await asyncio.Event().wait()  # no answer, ever: ends when the client (or the server) goes
    await ws.prepare(raw)
    record.status = ws.status
    if kubelet.fault == "refused":
        await _send(ws, ERROR, json.dumps(internal_error(dial_error(kubelet))).encode())
    elif kubelet.fault == "hung":
        await _until_closed(ws)
    else:
        await _run(ws, request, kubelet, ready.protocol)
    await ws.close()
    return ws


async def _send(ws: aiohttp.web.WebSocketResponse, channel: int, data: bytes) -> None:
    """One channel message; nothing if the client went away meanwhile."""
    with contextlib.suppress(ConnectionError):
        await ws.send_bytes(bytes([channel]) + data)


async def _until_closed(ws: aiohttp.web.WebSocketResponse) -> None:
    async for _ in ws:
        pass


async def _run(ws: aiohttp.web.WebSocketResponse, request: ExecRequest, kubelet: Kubelet, protocol: str) -> None:
    """Run the command inside the node; stdin from the client, stdout/stderr to it, then the exit Status. The
    process group is killed when the client goes first."""
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec(
            *kubelet.enter,
            *request.command,
            stdin=pipe if request.stdin else devnull,
            stdout=pipe if request.stdout else devnull,
            stderr=pipe if request.stderr else devnull,
            cwd="/",
            env=NODE_ENV,
            start_new_session=True,
            preexec_fn=functools.partial(cpu.join, kubelet.cpu_group),
        )
    except OSError as exc:
        await _send(ws, ERROR, json.dumps(internal_error(f"error executing command in container: {exc}")).encode())
        return

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        while stream is not None and (chunk := await stream.read(65536)):
            await _send(ws, channel, chunk)

    async def listen() -> None:  # stdin, v5's close of stdin, and the client leaving
        async for message in ws:
            data = message.data if message.type == aiohttp.WSMsgType.BINARY else b""
            if proc.stdin is None or not data:
                continue
            if data[0] == STDIN:
                proc.stdin.write(data[1:])
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
            elif data[0] == CLOSE and protocol == V5 and data[1:2] == bytes([STDIN]):
                proc.stdin.close()

    async def finish() -> int:
        await asyncio.gather(pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
        return await proc.wait()

    listener, finished = asyncio.ensure_future(listen()), asyncio.ensure_future(finish())
    try:
        await asyncio.wait({listener, finished}, return_when=asyncio.FIRST_COMPLETED)
        if finished.done():
            code = finished.result()
            code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
            await _send(ws, ERROR, json.dumps(exit_status(code, request.command)).encode())
    finally:
        for task in (listener, finished):
            task.cancel()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
