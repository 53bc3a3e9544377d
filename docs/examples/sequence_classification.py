"""A third prompt kind, written outside iclab: sequence classification, one label per prompt.

A prompt is a sequence of ``length`` vectors in R^d, ``x_1 .. x_T``; its label says whether the first coordinates
sum to a positive number (``sum_t x_t[0] > 0``). Nothing in iclab knows this kind: this file registers

- the kind (``KINDS``): how a network reads such prompts, what training logs, what evaluation writes
  (``eval/accuracy.csv``, ``plots/accuracy.png``), what the terminal, the report and ``iclab compare`` show, and
  the memory of a step;
- a task (``TASKS``, ``task.name: sequence_sign``) whose ``prompt_kind`` names it;
- a reference learner (``LEARNERS``, ``sum_sign``) that is exact on it.

Use it from a config (``imports: [docs/examples/sequence_classification.py]``) or the command line
(``iclab --import docs/examples/sequence_classification.py train CONFIG``); every command that works on a run
works on such a run, sweeps included. ``tests/test_kinds.py`` trains, evaluates, reports and sweeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from iclab.kinds import KINDS, PromptKind
from iclab.learners import LEARNERS
from iclab.learners.base import ReferenceLearner
from iclab.models import Layout
from iclab.models.size import FLOAT, MemoryEstimate, count_on_meta
from iclab.plotting import display_name, plot_training, pyplot
from iclab.schema import require, require_positive
from iclab.tables import read_table, write_table
from iclab.tasks import TASKS, Task
from iclab.utils import derive_seed

KIND = "sequence_classification"
Z_95 = 1.959964


@dataclass
class Sequences:
    """A batch: ``xs (B, T, d)`` and one class label per prompt, ``labels (B,)``."""

    xs: torch.Tensor
    labels: torch.Tensor
    info: dict

    def to(self, device) -> Sequences:
        return Sequences(self.xs.to(device), self.labels.to(device), self.info)

    def __getitem__(self, index) -> Sequences:
        return Sequences(self.xs[index], self.labels[index], self.info)

    @property
    def batch_size(self) -> int:
        return self.xs.shape[0]


# ---------------------------------------------------------------------------------------------- the task
@dataclass
class SequenceSignConfig:
    name: str = "sequence_sign"
    n_dims: int = 4  # d: the width of each element
    length: int = 8  # T: elements per prompt

    def validate(self, path: str = "task") -> None:
        require_positive(self, path, "n_dims", "length")


@TASKS.register
class SequenceSign(Task):
    """Label 1 when the first coordinates of the sequence sum to a positive number, else 0."""

    Config = SequenceSignConfig
    prompt_kind = KIND
    predicts_what = "one class per sequence"

    def describe(self) -> str:
        return f"{self.config.length} elements of width {self.config.n_dims}, label: sign of the sum of x[0]"

    def sample(self, batch_size, generator, n_active_dims=None, n_points=None) -> Sequences:
        xs = torch.randn(batch_size, self.config.length, self.config.n_dims, generator=generator)
        return Sequences(xs, (xs[:, :, 0].sum(1) > 0).long(), {})

    def train_batch(self, batch_size: int, seed: int, step: int) -> Sequences:
        return self.sample(batch_size, torch.Generator().manual_seed(derive_seed(seed, 0, step)))

    def eval_prompts(self, n_prompts: int, seed: int) -> Sequences:
        return self.sample(n_prompts, torch.Generator().manual_seed(derive_seed(seed, 1, 0)))

    def batch_loss(self, model, batch: Sequences, loss_on: str = "all") -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(batch.xs), batch.labels)

    def loss_terms(self, batch: Sequences, loss_on: str = "all") -> int:
        return batch.batch_size

    def log_fields(self, step: int, batch_size: int) -> dict:
        return {}

    def shift_unsupported(self, name: str) -> str | None:
        return None if name == "standard" else "its prompts have one label each; no shift is defined"

    def probe_target_unsupported(self, name: str) -> str | None:
        return "probe targets are properties of (x, y) prompts"

    def relevant_learners(self) -> list[str]:
        return ["sum_sign"]


# ---------------------------------------------------------------------------------------------- a learner
@LEARNERS.register
class SumSign(ReferenceLearner):
    """Exact: class 1 with probability 1 when ``sum_t x_t[0] > 0``."""

    name = "sum_sign"
    prompt_kind = KIND
    predicts_what = "one class per sequence"

    def __init__(self) -> None:
        super().__init__()

    def predict(self, prompts: Sequences) -> torch.Tensor:  # (B, 2) class probabilities
        positive = (prompts.xs[:, :, 0].sum(1) > 0).double()
        return torch.stack([1 - positive, positive], dim=1)


# ---------------------------------------------------------------------------------------------- the network
class SequenceClassifier(torch.nn.Module):
    """Any model family's network (``config.build``) over the sequence, classified from the last element's
    output."""

    label = "model"

    def __init__(self, config, n_dims: int) -> None:
        super().__init__()
        self.config = config
        self.backbone = config.build(n_dims, n_outputs=2)  # the family's network, any family with a read-in

    def forward(self, xs: torch.Tensor) -> torch.Tensor:  # (B, 2) logits
        return self.backbone(xs, self._layout(xs.shape[1], xs.device))[:, -1]

    @staticmethod
    def _layout(t: int, device) -> Layout:
        positions = torch.arange(t, device=device)
        return Layout(positions=positions, readout=positions, attn_mask=None)

    def forward_prompts(self, prompts: Sequences) -> torch.Tensor:
        return self(prompts.xs)

    def layout(self, prompts: Sequences) -> Layout:
        return self._layout(prompts.xs.shape[1], "cpu")

    @torch.no_grad()
    def predict(self, prompts: Sequences, batch_size: int = 1024) -> torch.Tensor:
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        try:
            parts = [
                torch.softmax(self(prompts.xs[i : i + batch_size].to(device)).double(), -1).cpu()
                for i in range(0, prompts.batch_size, batch_size)
            ]
        finally:
            self.train(was)
        return torch.cat(parts)


# ---------------------------------------------------------------------------------------------- the kind
def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    hits = (probs.argmax(-1) == labels.cpu()).double()
    p = float(hits.mean())
    return p, Z_95 * math.sqrt(max(p * (1 - p), 0.0) / len(hits))


@KINDS.register
class SequenceClassificationKind(PromptKind):
    name = KIND
    description = "labelled sequences (one class per prompt)"
    memory_fields = {
        "parameters": "model.n_embd and model.n_layer",
        "activations": "train.batch_size, task.length, model.n_layer",
        "data": "train.batch_size and task.length",
    }

    def check_model(self, model_config, task) -> None:
        require(type(model_config).read_in, "model.name", "must be a family with a linear read-in", model_config.name)
        if hasattr(model_config, "n_positions") and model_config.n_positions is None:
            model_config.n_positions = task.config.length

    def build_model(self, model_config, task):
        return SequenceClassifier(model_config, task.config.n_dims)

    def validate(self, task, model, prompts) -> tuple[dict, dict]:
        acc, _ = _accuracy(model.predict(prompts), prompts.labels)
        return {"val_accuracy": round(acc, 6)}, {"val_acc": acc}

    def step_memory(self, cfg, task) -> MemoryEstimate:
        b, t, d = cfg.train.batch_size, task.config.length, task.config.n_dims
        with torch.device("meta"):
            model = self.build_model(cfg.model, task)
            n_params, outputs = count_on_meta(model, torch.empty(b, t, d))
        return MemoryEstimate.of_training(n_params, outputs, self.data_bytes(cfg, task))

    def data_bytes(self, cfg, task) -> int:
        return FLOAT * cfg.train.batch_size * task.config.length * (task.config.n_dims + 1)

    def tokens_per_step(self, cfg, task) -> int:
        return cfg.train.batch_size * task.config.length

    def evaluate(self, run_dir: Path, cfg, model, step, task, learners, n_prompts, shifts, plot) -> list[dict]:
        prompts = task.eval_prompts(n_prompts, cfg.eval.seed)
        rows = []
        for learner in [model, *learners]:
            acc, half = _accuracy(learner.predict(prompts), prompts.labels)
            rows.append({"learner": learner.label, "accuracy": acc, "ci_low": acc - half, "ci_high": acc + half})
        write_table(run_dir / "eval" / "accuracy.csv", rows, ["learner", "accuracy", "ci_low", "ci_high"])
        if plot:
            _plot(rows, run_dir / "plots" / "accuracy.png", self.network_label(cfg.model))
        return rows

    def _rows(self, run_dir: Path) -> list[dict]:
        return read_table(
            run_dir / "eval" / "accuracy.csv",
            {"learner": str, "accuracy": float, "ci_low": float, "ci_high": float},
            what="accuracy table",
        )

    def summary_lines(self, rows, cfg, run_dir) -> tuple[list[str], list[str]]:
        network = self.network_label(cfg.model)
        return (
            ["held-out accuracy"]
            + [f"{display_name(r['learner'], network):<32}{r['accuracy']:.3f}" for r in self._rows(run_dir)],
            [],
        )

    def report_sections(self, cfg, run_dir, records) -> list[str]:
        from iclab.page import img, table

        network = self.network_label(cfg.model)
        rows = self._rows(run_dir)
        parts = [
            "<h2>Held-out accuracy</h2>",
            img(_plot(rows, run_dir / "plots" / "accuracy.png", network)),
            table(
                ["learner", "accuracy"], [[display_name(r["learner"], network), f"{r['accuracy']:.3f}"] for r in rows]
            ),
        ]
        png = plot_training(
            records,
            run_dir / "plots" / "training.png",
            loss_label="training loss (cross-entropy)",
            val_label="held-out accuracy",
            val_scalar="val_accuracy",
        )
        if png is not None:
            parts.append(f"<h2>Training</h2>{img(png)}")
        return parts

    def report_footer(self, cfg, task) -> str:
        return f"Accuracy over {cfg.eval.n_prompts} held-out prompts. Source table: eval/accuracy.csv."

    def comparison_metrics(self, run_dir, cfg, k) -> list[dict]:
        if not (run_dir / "eval" / "accuracy.csv").is_file():
            return []
        return [
            {"learner": r["learner"], "shift": "standard", "metric": "accuracy", "value": r["accuracy"]}
            for r in self._rows(run_dir)
        ]


def _plot(rows: list[dict], path: Path, network: str) -> Path:
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3), dpi=110)
    names = [display_name(r["learner"], network) for r in rows]
    ax.barh(names, [r["accuracy"] for r in rows], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("held-out accuracy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
