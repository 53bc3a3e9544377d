"""The interface every prompt kind implements, and the ``KINDS`` registry.

A *prompt kind* is what a batch of prompts is: real-valued ``(x, y)`` prompts (:mod:`iclab.kinds.real`), token
sequences (:mod:`iclab.kinds.tokens`), or one of your own. A task names its kind (``Task.prompt_kind``), and
everything that differs between kinds lives behind :class:`PromptKind`: how a network reads the prompts, what
the training log records about held-out prompts, what evaluation writes, what the terminal and the report show,
what a comparison reads and how much memory a step needs. The shared layers (training loop, evaluation driver,
report, sweeps, CLI) ask ``kind_of(task)`` and never test which kind they hold.

A new kind is a class with a ``name`` registered with ``@KINDS.register`` (in its own module or folder, inside
iclab or not) and tasks whose ``prompt_kind`` is that name; ``docs/extending.md`` shows a whole one (sequence
classification, one label per prompt) and ``tests/test_kinds.py`` trains, evaluates, reports and sweeps it.
"""

from __future__ import annotations

from pathlib import Path

from iclab.registry import Registry
from iclab.schema import require

KINDS = Registry("prompt kind")  # name -> PromptKind subclass; a task's ``prompt_kind`` names its entry


class PromptKind:
    """What differs between prompt kinds. Subclasses set :attr:`name` and :attr:`description` and implement
    the methods; one instance serves every task of the kind (it keeps no state)."""

    name: str = ""
    description: str = ""  # the prompts in words, for messages: "real-valued (x, y) prompts"
    # what a memory refusal asks to lower, by the part of the step that dominates
    memory_fields: dict[str, str] = {
        "parameters": "model.n_embd and model.n_layer",
        "activations": "train.batch_size, model.n_layer and model.n_embd",
        "data": "train.batch_size and train.eval_prompts",
    }
    attention_view: tuple[int, int | None] = (64, None)  # prompts and tokens the attention figure shows

    # ------------------------------------------------------------------ the network
    def check_model(self, model_config, task) -> None:
        """Raise :class:`~iclab.errors.ConfigError` when ``model_config`` cannot read ``task``'s prompts (and
        resolve what the task decides, such as a null ``n_positions``)."""

    def check_config(self, cfg, task) -> None:
        """Raise :class:`~iclab.errors.ConfigError` for run settings that make no sense for this kind."""

    def build_model(self, model_config, task):
        """The network of a run on ``task``: an ``nn.Module`` whose ``forward(batch)`` is what
        ``task.batch_loss`` trains and whose ``predict(prompts)`` makes it a learner."""
        raise NotImplementedError

    def network_label(self, model_config) -> str:
        """The network's name in tables and plots."""
        return model_config.label() + model_config.ngram_label()

    # ------------------------------------------------------------------ training
    def validate(self, task, model, prompts) -> tuple[dict, dict]:
        """The quick held-out evaluation during training: ``(record, shown)``, the fields the training log
        records and the few numbers the progress line shows."""
        raise NotImplementedError

    # ------------------------------------------------------------------ memory
    def step_memory(self, cfg, task):
        """A :class:`~iclab.models.size.MemoryEstimate` of one training step (build the network on the
        ``meta`` device: :func:`iclab.models.size.count_on_meta`)."""
        raise NotImplementedError

    def data_bytes(self, cfg, task) -> int:
        """The data batch's bytes, from sizes alone (checked before anything is built)."""
        return 0

    def tokens_per_step(self, cfg, task) -> int:
        """How many tokens the network reads in one training batch (for the closed-form memory bound)."""
        return cfg.train.batch_size

    def eval_bytes(self, task, n_prompts: int) -> int:
        """Bytes to evaluate on ``n_prompts`` held-out prompts (prompts and the reference learners' work)."""
        return 0

    # ------------------------------------------------------------------ evaluation and what shows it
    def evaluate(
        self, run_dir: Path, cfg, model, step: int, task, learners: list, n_prompts: int, shifts: list[str], plot: bool
    ) -> list[dict]:
        """Evaluate the trained ``model`` (as a learner: :class:`NetworkLearner`) and the reference ``learners`` on
        ``n_prompts`` held-out prompts: write ``run_dir/eval/`` (and figures under ``run_dir/plots/`` when
        ``plot``) and return the rows."""
        raise NotImplementedError

    def summary_lines(self, rows: list[dict], cfg, run_dir: Path) -> tuple[list[str], list[str]]:
        """What ``iclab train`` and ``iclab eval`` print after evaluating: ``(lines, warnings)``."""
        return [], []

    def report_sections(self, cfg, run_dir: Path, records: list[dict]) -> list[str]:
        """The report's HTML for this run, after the title (built with :mod:`iclab.page`)."""
        return []

    def report_footer(self, cfg, task) -> str:
        """The report's last line: what the numbers are and which files hold them (plain text)."""
        return ""

    def comparison_metrics(self, run_dir: Path, cfg, k: int | None) -> list[dict]:
        """Rows ``{learner, shift, metric, value}`` that ``iclab compare`` tabulates for an evaluated run (``k``:
        the number of examples asked for with ``--k``, where the kind has such a thing)."""
        return []


class NetworkLearner:
    """A trained network as a learner in evaluation tables (learner ``model``), predicting ``batch_size`` prompts
    at a time."""

    label = "model"

    def __init__(self, model, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size

    def predict(self, prompts):
        return self.model.predict(prompts, batch_size=self.batch_size)


def kind_of(task) -> PromptKind:
    """The kind of a built task's prompts: ``kind_of(make_task(cfg.task)).evaluate(...)``."""
    return KINDS[task.prompt_kind]()


def fit_positions(model_config, needed: int, why: str) -> None:
    """Resolve a null ``model.n_positions`` to ``needed``, or refuse a smaller one (``why``: what needs them)."""
    if not hasattr(model_config, "n_positions"):  # a family without position embeddings has no budget
        return
    if model_config.n_positions is None:
        model_config.n_positions = needed
    else:
        require(
            model_config.n_positions >= needed,
            "model.n_positions",
            f"must be at least {needed} {why}",
            model_config.n_positions,
        )


def build_for_task(model_config, task):
    """The network of a run on ``task`` (a built task), as its prompt kind builds it: an
    :class:`~iclab.models.ICLModel` behind a prompt encoder for real-valued prompts, a
    :class:`~iclab.models.LanguageModel` for token prompts."""
    return kind_of(task).build_model(model_config, task)


def build_run_network(cfg, task):
    """The network of run config ``cfg`` on ``task`` (a built task): the family's network, with what
    ``cfg.finetune`` adds (its other parameters frozen) and ``cfg.prune``'s masks; the weights are fresh, to be
    loaded from a checkpoint or from ``cfg.start``'s run."""
    model = kind_of(task).build_model(cfg.model, task)
    if getattr(cfg, "finetune", None) is not None:
        from iclab.models.petl import apply_petl

        apply_petl(model, cfg.finetune)
    if getattr(cfg, "prune", None) is not None:
        from iclab.models.pruning import add_unit_masks

        add_unit_masks(model)
    return model


def kind_of_config(task_config) -> PromptKind:
    """The kind of the prompts a task config describes (without building the task)."""
    from iclab.tasks import TASKS

    return KINDS[TASKS[task_config.name].prompt_kind]()


def describe_kind(name: str) -> str:
    """The prompts of kind ``name`` in words (the name itself for an unregistered kind)."""
    return KINDS[name].description if name in KINDS else f"{name} prompts"


__all__ = ["KINDS", "NetworkLearner", "PromptKind", "build_for_task", "describe_kind", "kind_of", "kind_of_config"]
