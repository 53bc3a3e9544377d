"""Raventós et al. 2023's reference numbers (d = 8, 16 points, sigma = 0.5) from iclab's learners.

    python benchmarks/raventos.py

Mean squared error over all 16 positions (position 0 included, unnormalised): ridge(lam = 0.25) on
fresh Gaussian tasks, and dMMSE on pool tasks for M = 4 / 64 / 1024, averaged over pool draws (a single
pool of 4 tasks varies a lot from draw to draw, so the spread over draws is printed too).

The reference numbers are single pools. Searching NumPy seeds 0..39 (pools of M = 4, 64, 1024 drawn one
after the other from ``numpy.random.default_rng(seed).standard_normal``), seed 3 is the only one whose
pools give all three pool-task numbers within 2% (within 0.7%; the next best seed is 3.3% off), and its
M = 4 pool also gives the fresh-task 12.96. The last block loads those pools with ``task.pool_file`` and
evaluates iclab's ``dmmse`` on them.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from _common import small
from iclab.config import load_config
from iclab.learners import make_learner
from iclab.tasks import make_task


def mse(learner, prompts) -> float:
    return ((learner.predict(prompts).double() - prompts.ys.double()) ** 2).mean().item()


def main() -> None:
    torch.set_num_threads(2)
    fresh = make_task(load_config(None, ["task.n_dims=8", "task.n_points=16", "task.noise_std=0.5"]).task)
    print(
        "ridge(lam=0.25), fresh tasks, 50000 prompts: "
        f"{mse(make_learner('ridge(lam=0.25)'), fresh.eval_prompts(small(50000, 64), 0)):.4f}"
        "   (reference 2.996)"
    )
    for m, draws, reference in [(4, small(40, 1), 0.90), (64, small(20, 1), 1.44), (1024, small(4, 1), 2.06)]:
        vals, fresh_vals = [], []
        for seed in range(draws):
            task = make_task(
                load_config(None, ["task.name=task_pool", f"task.pool_size={m}", f"task.pool_seed={seed}"]).task
            )
            dmmse = make_learner("dmmse", task=task)
            vals.append(mse(dmmse, task.eval_prompts(small(4000, 16), seed)))
            fresh_vals.append(mse(dmmse, fresh.eval_prompts(small(2000, 16), 100 + seed)))
        print(
            f"dMMSE M={m}: pool tasks {statistics.mean(vals):.3f} "
            f"(over {draws} pools: {min(vals):.3f}..{max(vals):.3f};"
            f" reference {reference}), fresh tasks {statistics.mean(fresh_vals):.2f}"
        )
    print("the reference's pools (numpy default_rng(3), M = 4, 64, 1024 drawn in turn), via task.pool_file:")
    for (m, reference, fresh_reference), file in zip(
        [(4, 0.90, 12.96), (64, 1.44, 7.14), (1024, 2.06, 5.10)], numpy_pools(3, Path(tempfile.mkdtemp()))
    ):
        task = make_task(
            load_config(None, ["task.name=task_pool", f"task.pool_size={m}", f"task.pool_file={file}"]).task
        )
        dmmse = make_learner("dmmse", task=task)
        on_pool, on_fresh = (
            mse(dmmse, task.eval_prompts(small(20000, 16), 0)),
            mse(dmmse, fresh.eval_prompts(small(20000, 16), 1)),
        )
        print(
            f"dMMSE M={m}: pool tasks {on_pool:.3f} (reference {reference}, {100 * (on_pool / reference - 1):+.1f}%),"
            f" fresh tasks {on_fresh:.2f} (reference {fresh_reference}, {100 * (on_fresh / fresh_reference - 1):+.1f}%)"
        )


def numpy_pools(seed: int, folder: Path, sizes=(4, 64, 1024), d: int = 8) -> list[Path]:
    """Pools drawn one after the other from ``numpy.random.default_rng(seed)``, saved as .npy files."""
    rng = np.random.default_rng(seed)
    files = []
    for m in sizes:
        files.append(folder / f"pool{m}.npy")
        np.save(files[-1], rng.standard_normal((m, d)))
    return files


if __name__ == "__main__":
    main()
