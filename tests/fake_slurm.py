"""A stand-in for SLURM's commands that runs jobs on this machine, for testing the SLURM executor without a
cluster. ``install(bin_dir, state_dir)`` writes executables ``sbatch``, ``squeue``, ``sacct``, ``scancel``,
``scontrol`` and ``srun`` that call this file.

- ``sbatch SCRIPT`` reads the ``#SBATCH`` lines (``--array=0-N%P``, ``--output``, ``--error``), prints
  ``Submitted batch job ID`` and leaves a detached manager process that runs the array's tasks, at most P at once,
  each as ``bash SCRIPT`` with the SLURM_* variables a task sees.
- ``srun [--output F] [--error F] ... CMD`` runs CMD in its place (exec), its output appended to F, and records
  its pid as the job step's.
- ``sacct -o JobID,State,NodeList --parsable2 -j ID`` reports each task's state.
- ``scancel ID[_TASK] [--signal SIG]`` sends SIG to the job steps (preemption is SIGTERM), or cancels.
- ``scontrol requeue ID_TASK`` runs the task again once its process has exited, as SLURM does.

State lives in files under ``$FAKE_SLURM_DIR``: ``<id>.job`` (JSON), ``<id>_<task>.state``, ``.pid``, ``.requeue``,
``.cancel`` and ``.starts`` (how many times the task has started).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol", "srun")


def install(bin_dir: Path, state_dir: Path) -> dict:
    """Write the executables; returns the environment (PATH, FAKE_SLURM_DIR) to run with."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for cmd in COMMANDS:
        exe = bin_dir / cmd
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" {cmd} "$@"\n')
        exe.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_SLURM_DIR": str(state_dir)}


def _state() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def _task_files(job: str, task: int | None) -> str:
    return f"{job}_{task}" if task is not None else job


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def _expand(pattern: str, job: str, task: int | None, job_id: str) -> str:
    return (
        pattern.replace("%A", job)
        .replace("%a", str(task if task is not None else 0))
        .replace("%j", job_id)
        .replace("%t", "0")
    )


def sbatch(args: list[str]) -> int:
    script = Path([a for a in args if not a.startswith("-")][-1])
    text = script.read_text()
    opts = dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", text, flags=re.M))
    counter = _state() / "counter"
    job = str(int(_read(counter, "1000")) + 1)
    counter.write_text(job)
    tasks, parallel = [None], 1
    if "array" in opts:
        m = re.fullmatch(r"'?(\d+)-(\d+)(?:%(\d+))?'?", opts["array"].strip())
        tasks = list(range(int(m.group(1)), int(m.group(2)) + 1))
        parallel = int(m.group(3) or len(tasks))
    record = {
        "job": job,
        "script": str(script),
        "tasks": tasks,
        "parallel": parallel,
        "output": opts.get("output", "slurm-%j.out").strip("'"),
        "error": opts.get("error", "").strip("'"),
    }
    (_state() / f"{job}.job").write_text(json.dumps(record))
    for t in tasks:
        (_state() / f"{_task_files(job, t)}.state").write_text("PENDING")
    subprocess.Popen(
        [sys.executable, __file__, "_manage", job],
        start_new_session=True,
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"Submitted batch job {job}")
    return 0


def _manage(job: str) -> int:
    """Run the tasks of one job, at most ``parallel`` at once, requeueing on request."""
    record = json.loads((_state() / f"{job}.job").read_text())
    queue = list(record["tasks"])
    running: dict = {}
    while queue or running:
        while queue and len(running) < record["parallel"]:
            t = queue.pop(0)
            base = _state() / _task_files(job, t)
            if Path(f"{base}.cancel").exists():
                Path(f"{base}.state").write_text("CANCELLED")
                continue
            job_id = job if t is None else str(int(job) * 1000 + t)
            env = dict(
                os.environ,
                SLURM_JOB_ID=job_id,
                SLURM_NTASKS="1",
                SLURM_JOB_NUM_NODES="1",
                SLURM_NODEID="0",
                SLURM_PROCID="0",
                SLURM_LOCALID="0",
                SLURM_JOB_NODELIST="localhost",
                FAKE_SLURM_STEP=_task_files(job, t),
            )
            if t is not None:
                env.update(SLURM_ARRAY_JOB_ID=job, SLURM_ARRAY_TASK_ID=str(t))
            out = _expand(record["output"], job, t, job_id)
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            starts = int(_read(Path(f"{base}.starts"), "0")) + 1
            Path(f"{base}.starts").write_text(str(starts))
            Path(f"{base}.state").write_text("RUNNING")
            with open(out, "a") as f:
                running[t] = subprocess.Popen(["bash", record["script"]], env=env, stdout=f, stderr=subprocess.STDOUT)
        for t, proc in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[t]
            base = _state() / _task_files(job, t)
            if Path(f"{base}.requeue").exists():
                Path(f"{base}.requeue").unlink()
                Path(f"{base}.state").write_text("PENDING")
                queue.append(t)
            elif Path(f"{base}.cancel").exists():
                Path(f"{base}.state").write_text("CANCELLED")
            else:
                Path(f"{base}.state").write_text("COMPLETED" if code == 0 else "FAILED")
        time.sleep(0.1)
    return 0


def srun(args: list[str]) -> int:
    files = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag = args[i]
        if flag in ("--output", "--error"):
            files[flag] = args[i + 1]
            i += 2
            continue
        i += 1
    cmd = args[i:]
    job, task = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ["SLURM_JOB_ID"]), os.environ.get("SLURM_ARRAY_TASK_ID")
    t = int(task) if task is not None else None
    for flag, fd in (("--output", 1), ("--error", 2)):
        if flag in files:
            path = _expand(files[flag], job, t, os.environ["SLURM_JOB_ID"])
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(target, fd)
    (_state() / f"{os.environ['FAKE_SLURM_STEP']}.pid").write_text(str(os.getpid()))
    os.execvp(cmd[0], cmd)


def _targets(spec: str) -> list[str]:
    """``1001`` (every task of the job) or ``1001_3`` -> file stems."""
    job, _, task = spec.partition("_")
    if task:
        return [f"{job}_{task}"]
    record = json.loads((_state() / f"{job}.job").read_text())
    return [_task_files(job, t) for t in record["tasks"]]


def scancel(args: list[str]) -> int:
    sig = None
    ids = []
    i = 0
    while i < len(args):
        if args[i] == "--signal" or args[i] == "-s":
            sig = args[i + 1]
            i += 2
        elif args[i].startswith("--signal="):
            sig = args[i].split("=", 1)[1]
            i += 1
        else:
            ids.append(args[i])
            i += 1
    for spec in ids:
        for stem in _targets(spec):
            pid = _read(_state() / f"{stem}.pid")
            if sig is None:
                (_state() / f"{stem}.cancel").write_text("1")
            if pid and _read(_state() / f"{stem}.state") == "RUNNING":
                name = sig.upper() if sig else "SIGKILL"
                name = name if name.startswith("SIG") else f"SIG{name}"
                try:
                    os.kill(int(pid), getattr(signal, name))
                except ProcessLookupError:
                    pass
    return 0


def scontrol(args: list[str]) -> int:
    if args[:1] != ["requeue"]:
        print(f"fake scontrol: only `requeue` is supported, got {args}", file=sys.stderr)
        return 1
    for spec in args[1:]:
        for stem in _targets(spec):
            (_state() / f"{stem}.requeue").write_text("1")
    return 0


def sacct(args: list[str]) -> int:
    jobs = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for job in jobs:
        if not (_state() / f"{job}.job").exists():
            continue
        for stem in _targets(job):
            print(f"{stem}|{_read(_state() / f'{stem}.state', 'UNKNOWN')}|localhost")
    return 0


def squeue(args: list[str]) -> int:
    print("JOBID STATE")
    for path in sorted(_state().glob("*.state")):
        state = _read(path)
        if state in ("PENDING", "RUNNING"):
            print(f"{path.stem} {state}")
    return 0


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "_manage":
        sys.exit(_manage(rest[0]))
    sys.exit(
        {"sbatch": sbatch, "srun": srun, "scancel": scancel, "scontrol": scontrol, "sacct": sacct, "squeue": squeue}[
            cmd
        ](rest)
    )
