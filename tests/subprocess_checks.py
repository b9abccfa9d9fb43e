"""Run a Python snippet in a fresh interpreter, and check that kernels survive ``fork()``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

_FORK_HARNESS = """
import faulthandler
import os
import torch

parent = run()  # the parallel (OpenMP) kernels run in the parent before the fork
pid = os.fork()
if pid == 0:
    faulthandler.dump_traceback_later(60, exit=True)  # never hang the test
    torch.set_num_threads(1)  # as torch's DataLoader does in its workers
    child = run()
    same = all(torch.equal(a, b) for a, b in zip(parent, child))
    os._exit(0 if same else 3)
_, status = os.waitpid(pid, 0)
print("FORK-STATUS", status)
"""


def run_python(
    script: str, *, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the repository on ``PYTHONPATH`` (and ``env`` added); never raises."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=full_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_same_in_forked_child(run_definition: str) -> None:
    """``run()`` (defined by the snippet, returning tensors) gives identical results in a child
    forked after the parent ran it: fork-started DataLoader workers must not abort (GNU OpenMP)
    nor compute anything different."""
    proc = run_python(textwrap.dedent(run_definition) + _FORK_HARNESS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FORK-STATUS 0" in proc.stdout, proc.stdout + proc.stderr
