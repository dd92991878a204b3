"""No secret reaches an artefact: the API's bearer token, the SSH private key and a planted environment
variable are searched for in every file a run writes and in everything it prints — also with pytest's
--showlocals and a failing run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLANTED_ENV = "IBCONFORM_TEST_PLANTED_SECRET"
PLANTED_VALUE = "planted-9f3b1c77e2d4a8b6"


def _secrets(twin) -> dict[str, str]:
    token = twin.api.token
    key_lines = [line for line in twin.identity_path.read_text().splitlines() if line and "PRIVATE KEY" not in line]
    return {"api token": token, "private key (a line of it)": max(key_lines, key=len), "environment": PLANTED_VALUE}


def _scan(paths: list[Path], texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    leaks = []
    for path in paths:
        for file in [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]:
            data = file.read_bytes()
            leaks += [f"{what} in {file}" for what, secret in secrets.items() if secret.encode() in data]
    for name, text in texts.items():
        leaks += [f"{what} in {name}" for what, secret in secrets.items() if secret in text]
    return leaks


def test_no_secret_in_any_artefact_or_output(faults_twin, tmp_path):
    env = dict(os.environ, **{PLANTED_ENV: PLANTED_VALUE})
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "ibconform.cli", "run", "-i", str(faults_twin.inventory_path),
                          "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 1 and (out / "report.html").exists()
    plain = subprocess.run([sys.executable, "-m", "pytest", "checks/", "--inventory", str(faults_twin.inventory_path),
                            "--report-dir", str(tmp_path / "plain"), "--showlocals", "--tb=long", "-p", "no:kmock",
                            "-p", "no:cacheprovider"],
                           capture_output=True, text=True, env=env, timeout=300,
                           cwd=Path(__file__).resolve().parents[2])
    assert plain.returncode == 1, plain.stdout[-2000:]
    leaks = _scan([out, tmp_path / "plain"],
                  {"run stdout": run.stdout, "run stderr": run.stderr,
                   "pytest --showlocals stdout": plain.stdout, "pytest stderr": plain.stderr},
                  _secrets(faults_twin))
    assert leaks == []
