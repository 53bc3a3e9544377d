"""Real-valued prompts ``(x_1, y_1, ..., x_N, y_N)``: regression, and classification into ``n_classes`` classes.

A network reads them through a prompt encoder (:mod:`iclab.models.encoders`) as an :class:`~iclab.models.ICLModel`
and predicts every ``y_i`` from its prefix. Evaluation is error against the number of in-context examples ``k``
(:mod:`iclab.kinds.real.curves`), under every distribution shift asked for, written to ``eval/curves.csv``; the
report and the terminal show those curves and a table at a few ``k``; a comparison reads ``error@k`` and the mean
error over ``k``.
"""

from __future__ import annotations

import math
from pathlib import Path

from iclab.kinds.base import KINDS, NetworkLearner, PromptKind, fit_positions
from iclab.models.size import FLOAT, MemoryEstimate
from iclab.schema import require


@KINDS.register
class RealKind(PromptKind):
    name = "real"
    description = "real-valued (x, y) prompts"
    memory_fields = {
        "parameters": "model.n_embd, model.n_layer and task.n_dims (the read-in)",
        "activations": "train.batch_size, task.n_points, model.n_layer and model.n_embd",
        "data": "train.batch_size, task.n_points, task.n_dims and train.eval_prompts",
    }
    attention_view = (64, None)

    # ------------------------------------------------------------------ the network
    def check_model(self, model_config, task) -> None:
        from iclab.models.encoders import ENCODERS

        require(
            type(model_config).real_valued,
            "model.name",
            f"{model_config.name} reads token ids only; task {task.name} has real-valued prompts",
            model_config.name,
        )
        require(
            not model_config.ngram_heads,
            "model.ngram_heads",
            f"n-gram layers read token ids; task {task.name} has real-valued prompts (leave it empty)",
            model_config.ngram_heads,
        )
        require(
            model_config.embedding == "trainable",
            "model.embedding",
            f"frozen embeddings are tables of token ids; task {task.name} has real-valued prompts (a linear read-in)",
            model_config.embedding,
        )
        needed = ENCODERS[model_config.encoder].positions_needed(task.n_points)
        why = f"for prompts of task.n_points={task.n_points} with the {model_config.encoder} encoder"
        fit_positions(model_config, needed, why)

    def build_model(self, model_config, task):
        from iclab.models import build_model

        return build_model(model_config, task.n_dims, task.n_classes)

    def network_label(self, model_config) -> str:
        return model_config.label()

    # ------------------------------------------------------------------ training
    def validate(self, task, model, prompts) -> tuple[dict, dict]:
        """The held-out error at every k; the progress line shows it at the last k."""
        errs = task.error(model.predict(prompts), prompts.ys).mean(0).tolist()
        return {"val_err_by_k": [round(e, 6) for e in errs]}, {"val_err_last": errs[-1]}

    # ------------------------------------------------------------------ memory
    def step_memory(self, cfg, task) -> MemoryEstimate:
        import torch

        from iclab.models import build_model
        from iclab.models.encoders import ENCODERS
        from iclab.models.size import count_layers, count_on_meta

        b, n, d = cfg.train.batch_size, task.n_points, task.n_dims
        label_width = task.n_classes or 1
        token_floats = b * (2 * n - 1) * ENCODERS[cfg.model.encoder].width(d, label_width)  # 2N - 1 tokens
        data = FLOAT * (b * n * (d + label_width) + token_floats)
        if cfg.train.eval_every:
            data += FLOAT * cfg.train.eval_prompts * n * (d + 2 * label_width)

        def count(model_config):
            with torch.device("meta"):
                model = build_model(model_config, d, task.n_classes)
                return count_on_meta(model, torch.empty(b, n, d), torch.empty(b, n))

        n_params, outputs = count_layers(count, cfg.model)
        return MemoryEstimate.of_training(n_params, outputs, data)

    def data_bytes(self, cfg, task) -> int:
        return FLOAT * cfg.train.batch_size * task.n_points * (task.n_dims + 1)

    def tokens_per_step(self, cfg, task) -> int:
        return cfg.train.batch_size * (2 * task.n_points - 1)  # every encoder makes 2N - 1 tokens

    def eval_bytes(self, task, n_prompts: int) -> int:
        """The prompts (float32, and the float64 copies the reference learners work on) and a few ``d x d``
        matrices per prompt (least squares, ridge, GD keep one per prompt while they sweep the prefixes)."""
        n, d = task.n_points, task.n_dims
        return n_prompts * (3 * n * (d + 2) * (FLOAT + 8) + 4 * d * d * 8)

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, run_dir: Path, cfg, model, step: int, task, learners: list, n_prompts: int, shifts: list[str], plot: bool
    ) -> list[dict]:
        """``eval/curves.csv``: error against k for every learner and shift; ``plots/curves_<shift>.png``."""
        import torch

        from iclab.kinds.real.curves import COLUMNS, error_curves
        from iclab.tables import write_table
        from iclab.tasks import apply_shift

        rows = []
        for shift in shifts:
            prompts = apply_shift(shift, task, n_prompts, cfg.eval.seed)
            with torch.no_grad():
                rows += error_curves(
                    [NetworkLearner(model, cfg.eval.batch_size), *learners],
                    prompts,
                    task.error_scale,
                    shift,
                    error_fn=task.error,
                )
        write_table(run_dir / "eval" / "curves.csv", rows, COLUMNS)
        if plot:
            from iclab.kinds.real.figures import plot_curves, shift_slug

            for shift in shifts:
                plot_curves(
                    [r for r in rows if r["shift"] == shift],
                    run_dir / "plots" / f"curves_{shift_slug(shift)}.png",
                    n_dims=task.n_dims,
                    title=f"{task.name} (d={task.n_dims}), {shift}, step {step}",
                    ylabel=task.error_label,
                    network=self.network_label(cfg.model),
                )
        return rows

    def summary_lines(self, rows: list[dict], cfg, run_dir: Path) -> tuple[list[str], list[str]]:
        """The error at a few k for every learner on standard prompts; a warning per diverged learner."""
        from iclab.kinds.real.figures import diverged, summary_ks
        from iclab.plotting import display_name, fmt_error
        from iclab.tasks import make_task

        std = [r for r in rows if r["shift"] == "standard"]
        if not std:
            return [], []
        ks = summary_ks(std, cfg.task.n_dims)
        learners = list(dict.fromkeys(r["learner"] for r in std))
        by = {(r["learner"], r["k"]): r["mean"] for r in std}
        network = self.network_label(cfg.model)
        width = max(len(display_name(lab, network)) for lab in learners)
        lines = [
            f"{make_task(cfg.task).error_label} at k in-context examples (standard prompts)",
            " " * width + "".join(f"{'k=' + str(k):>9}" for k in ks),
        ]
        for lab in learners:
            lines.append(
                f"{display_name(lab, network):<{width}}"
                + "".join(f"{fmt_error(by[(lab, k)]) if (lab, k) in by else '':>9}" for k in ks)
            )
        warnings = [
            f"{display_name(lab, network)} has non-finite errors at k = "
            f"{', '.join(map(str, sorted(set(bad))))}: it diverged"
            for lab, bad in diverged(rows).items()
        ]
        return lines, warnings

    def report_sections(self, cfg, run_dir: Path, records: list[dict]) -> list[str]:
        from iclab.kinds.real.report import sections

        return sections(self, cfg, run_dir, records)

    def report_footer(self, cfg, task) -> str:
        from iclab.kinds.real.report import footer

        return footer(cfg, task)

    def comparison_metrics(self, run_dir: Path, cfg, k: int | None) -> list[dict]:
        """``error@k`` (at ``k``, else the last k), ``accuracy@k`` for classification, and ``error_mean`` over
        k >= 1, per learner and shift."""
        from iclab.errors import RunFolderError
        from iclab.kinds.real.curves import TYPES
        from iclab.tables import read_table
        from iclab.tasks import make_task

        try:
            curves = read_table(run_dir / "eval" / "curves.csv", TYPES, missing_ok=True)
        except RunFolderError:
            return []
        classes = make_task(cfg.task).n_classes is not None
        by: dict[tuple[str, str], dict[int, float]] = {}
        for r in curves:
            by.setdefault((r["learner"], r["shift"]), {})[r["k"]] = r["mean"]
        out = []
        for (learner, shift), errs in by.items():
            if k is not None and k not in errs:
                continue
            at = k if k is not None else max(errs)
            out.append({"learner": learner, "shift": shift, "metric": f"error@k={at}", "value": errs[at]})
            if classes:
                out.append({"learner": learner, "shift": shift, "metric": f"accuracy@k={at}", "value": 1 - errs[at]})
            finite = [v for kk, v in errs.items() if kk >= 1 and math.isfinite(v)]
            if finite:
                out.append(
                    {"learner": learner, "shift": shift, "metric": "error_mean", "value": sum(finite) / len(finite)}
                )
        return out
