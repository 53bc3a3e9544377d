"""The local executor: a pool of worker processes that shares this machine's cores between runs.

Each point runs in its own process (``python -m iclab.sweeps.point``) with ``threads`` torch threads, and
``jobs`` of them at once, by default the cores divided by the threads: on 2 cores, two 1-thread runs. (On a
small machine one thread per run is the fast choice: intra-op threads of small models mostly wait on each
other, and two 2-thread runs on 2 cores contend; docs/benchmarks.md has the measurement.)

A worker dies with its driver (Linux: the parent-death signal is SIGTERM, so it saves a checkpoint first);
a restarted driver's worker for the same point waits on the point's lock until the old one has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from iclab.sweeps.point import EXIT_INTERRUPTED
from iclab.sweeps.spec import available_cores

__all__ = ["LocalExecutor"]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed driver, the point lock still holds
        pass


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int | None = None, threads: int | None = None) -> None:
        self.threads = threads or 1
        self.jobs = jobs or max(1, available_cores() // self.threads)

    def describe(self) -> str:
        return f"local: {self.jobs} at once, {self.threads} torch thread{'s' * (self.threads > 1)} each"

    def run(self, folder: Path, names: list[str], report: Callable[..., None]) -> None:
        """Run every point in ``names``; ``report(name, status, message=..., seconds=...)`` after each."""
        queue = list(names)
        running: dict[str, tuple[subprocess.Popen, float, object]] = {}
        logs = folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads), PYTHONUNBUFFERED="1"
        )
        stopping = False

        def stop(signum, _frame):
            nonlocal stopping
            stopping = True
            for proc, _, _ in running.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # each worker saves a checkpoint at its next step

        old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while queue or running:
                while queue and len(running) < self.jobs and not stopping:
                    name = queue.pop(0)
                    log = open(logs / f"{name}.log", "ab")
                    cmd = [
                        sys.executable,
                        "-m",
                        "iclab.sweeps.point",
                        str(folder),
                        name,
                        "--threads",
                        str(self.threads),
                    ]
                    proc = subprocess.Popen(
                        cmd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                    )
                    running[name] = (proc, time.perf_counter(), log)
                    report(name, "running")
                for name, (proc, t0, log) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    log.close()
                    del running[name]
                    seconds = round(time.perf_counter() - t0, 1)
                    if code == 0:
                        report(name, "finished", seconds=seconds)
                    elif code == EXIT_INTERRUPTED or (stopping and code < 0):
                        report(name, "interrupted", seconds=seconds)
                    else:
                        report(name, "failed", message=_last_error(logs / f"{name}.log", code), seconds=seconds)
                if stopping and not running:
                    break
                time.sleep(0.2)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if stopping:
            raise KeyboardInterrupt


def _last_error(log: Path, code: int) -> str:
    """The line of a failed point's log that says why (the last `iclab:` line, else the last line)."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("iclab:"):
            return line
    return lines[-1] if lines else f"exit status {code}"
