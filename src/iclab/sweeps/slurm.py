"""The SLURM executor: one job array per sweep, through submitit (``pip install 'iclab[slurm]'``).

Each array task runs one point (:func:`iclab.sweeps.point.run_point`) with the resources of the sweep file's
``slurm:`` section. Preemption and time limits:

- SLURM preempts a job with SIGTERM, and submitit asks SLURM for SIGUSR2 ``signal_delay_s`` (90 s) before the
  time limit. The training loop turns either signal into a checkpoint at the next step boundary.
- The task then hands over to submitit: the point's :meth:`PointJob.checkpoint` resubmits the same point, which
  resumes from that checkpoint, exactly. submitit calls ``scontrol requeue``.
- A task that reaches its time limit more than ``slurm.max_requeues`` times is not requeued again.
  Preemptions do not count.

The driver (``iclab sweep``) waits for the array and records each task's job id in ``sweep.json``. If it is
stopped, the jobs run on; running the sweep again skips the points they finished.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from iclab.errors import ConfigError

__all__ = ["PointJob", "SlurmExecutor"]


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("--executor slurm: needs submitit, an optional extra (pip install 'iclab[slurm]')") from None
    return submitit


class PointJob:
    """What one array task runs: a sweep point, requeued through submitit when training was interrupted."""

    def __init__(self, folder: str, name: str, threads: int | None) -> None:
        self.folder, self.name, self.threads = folder, name, threads

    def __call__(self) -> str:
        from iclab.sweeps.point import run_point

        status = run_point(self.folder, self.name, self.threads)
        if status == "interrupted":  # preempted or warned of the time limit: saved; submitit requeues us
            from submitit.core.job_environment import JobEnvironment

            signal.raise_signal(JobEnvironment._usr_sig())  # submitit's handler: checkpoint(), requeue, exit
            time.sleep(60)  # not reached: the handler exits the process
        return status

    def checkpoint(self, *args, **kwargs):
        """submitit's hook before a requeue: run the same point again (it resumes from its own checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(PointJob(self.folder, self.name, self.threads))


class SlurmExecutor:
    name = "slurm"

    def __init__(self, config, threads: int | None) -> None:
        self.submitit = _submitit()
        self.config = config
        self.threads = threads

    def describe(self) -> str:
        c = self.config
        gpus = f", {c.gpus_per_node} GPU" if c.gpus_per_node else ""
        part = f" on {c.partition}" if c.partition else ""
        return f"slurm{part}: a job array, {c.cpus_per_task} CPUs{gpus} and {c.time_min} min per task"

    def parameters(self, folder: Path) -> dict:
        c = self.config
        params = {
            "time": c.time_min,
            "cpus_per_task": c.cpus_per_task,
            "job_name": f"iclab-{folder.name}",
            "array_parallelism": c.array_parallelism,
            "use_srun": c.use_srun,
        }
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(c, key) is not None:
                params[key] = getattr(c, key)
        if c.gpus_per_node:
            params["gpus_per_node"] = c.gpus_per_node
        if c.mem_gb is not None:
            params["mem"] = f"{int(c.mem_gb * 1024)}MB"
        if c.setup:
            params["setup"] = list(c.setup)
        if c.additional:
            params["additional_parameters"] = dict(c.additional)
        return params

    def run(self, folder: Path, names: list[str], report: Callable[..., None], poll_s: float = 1.0) -> None:
        ex = self.submitit.SlurmExecutor(folder=folder / "slurm", max_num_timeout=self.config.max_requeues)
        ex.update_parameters(**self.parameters(folder))
        absolute = str(Path(folder).resolve())
        with ex.batch():
            jobs = [ex.submit(PointJob(absolute, n, self.threads)) for n in names]
        t0 = {}
        for n, j in zip(names, jobs):
            t0[n] = time.perf_counter()
            report(n, "submitted", job=j.job_id)
        pending = dict(zip(names, jobs))
        try:
            while pending:
                for n, j in list(pending.items()):
                    if not j.done():
                        continue
                    del pending[n]
                    seconds = round(time.perf_counter() - t0[n], 1)
                    try:
                        report(n, j.result(), seconds=seconds)
                    except Exception as e:  # the task failed: submitit re-raises its error here
                        lines = [ln for ln in str(e).splitlines() if ln.strip()]
                        why = next(
                            (ln.strip() for ln in reversed(lines) if "iclab" in ln or "Error" in ln),
                            lines[-1] if lines else type(e).__name__,
                        )
                        report(n, "failed", message=f"job {j.job_id}: {why}"[:300], seconds=seconds)
                time.sleep(poll_s)
        except KeyboardInterrupt:
            print(
                f"iclab sweep: the driver stopped; {len(pending)} SLURM jobs run on "
                f"({', '.join(j.job_id for j in pending.values())}); run the sweep again later to collect them"
            )
            raise
