"""Token prompts: sequences over a task's vocabulary (:class:`~iclab.types.TokenPrompts`), for formal languages,
arithmetic, algorithmic tasks and associative recall.

A network reads them as a causal language model (:class:`~iclab.models.LanguageModel`) and, like every token
learner, returns a next-token distribution at each position from the prefix. Evaluation scores those
distributions (:mod:`iclab.kinds.tokens.metrics`: greedy accuracy, total variation distance to the true next-symbol
distribution, cross-entropy, KL) against the task's own unit (``eval/curves.csv``) and averaged over every scored
position (``eval/summary.csv``); tasks that decode answers (``generates``) are also scored by exact match
(:mod:`iclab.kinds.tokens.generation`, ``eval/generation.csv``).
"""

from __future__ import annotations

import math
from pathlib import Path

from iclab.kinds.base import KINDS, NetworkLearner, PromptKind, fit_positions
from iclab.models.size import FLOAT, MemoryEstimate
from iclab.schema import require


@KINDS.register
class TokenKind(PromptKind):
    name = "tokens"
    description = "token sequences"
    memory_fields = {
        "parameters": "model.n_embd and model.n_layer",
        "activations": "train.batch_size, task.max_length, model.n_layer and model.n_embd",
        "data": "train.batch_size, task.max_length and train.eval_prompts",
    }
    attention_view = (16, 48)  # hundreds of tokens: the first 48, where a pattern can be seen

    # ------------------------------------------------------------------ the network
    def check_model(self, model_config, task) -> None:
        family = type(model_config)
        require(
            family.read_in,
            "model.name",
            f"must be a family with a token read-in for the token task "
            f"{task.name} ({model_config.name} reads stacked real-valued prompts only)",
            model_config.name,
        )
        if task.bidirectional:
            require(
                family.bidirectional,
                "model.name",
                f"must be a family that reads a whole input at once (transformer, transformer_program): task "
                f"{task.name} labels every position from the whole input",
                model_config.name,
            )
        require(
            family.embedding_table or model_config.embedding == "trainable",
            "model.embedding",
            f"{model_config.name} has no embedding table to freeze (leave it trainable)",
            model_config.embedding,
        )
        if getattr(task, "no_positions", False):
            require(
                getattr(model_config, "positional", None) == "none",
                "model.positional",
                f"must be none for task {task.name}: position embeddings would tell every token its position",
                getattr(model_config, "positional", None),
            )
        fit_positions(model_config, task.max_tokens, f"(task {task.name}'s prompts have up to that many input tokens)")
        model_config.check_token_task(task)

    def check_config(self, cfg, task) -> None:
        require(
            cfg.train.loss_on == "all",
            "train.loss_on",
            "must be 'all' for a token task (the loss is the cross-entropy of every scored next token)",
            cfg.train.loss_on,
        )

    def build_model(self, model_config, task):
        from iclab.models.embeddings import freeze_embedding
        from iclab.models.lm import LanguageModel

        model_config.check_token_task(task)  # (resolves what a family sizes from the task; a no-op when resolved)
        model = LanguageModel(
            model_config,
            task.vocab_size,
            bidirectional=task.bidirectional,
            pad=task.vocab.pad,
            n_outputs=task.n_outputs,
        )
        freeze_embedding(getattr(model.backbone, "read_in", None), model_config.embedding, task.vocab.symbols)
        return model

    def network_label(self, model_config) -> str:
        return model_config.label(tokens=True) + model_config.ngram_label()

    # ------------------------------------------------------------------ training
    def validate(self, task, model, prompts) -> tuple[dict, dict]:
        """Greedy accuracy pooled over every scored held-out position (``val_accuracy``, what the progress line
        shows), and 1 - accuracy against the task's unit (``val_err_by_k``)."""
        from iclab.kinds.tokens.metrics import token_curves, token_metrics

        acc = token_metrics(model.predict(prompts), prompts)["accuracy"]
        scored = prompts.scored.cpu()
        pooled = float(acc[scored].mean()) if bool(scored.any()) else float("nan")
        rows = token_curves({"accuracy": acc}, prompts.info["string_index"].cpu(), scored, "model")
        return (
            {"val_err_by_k": [round(1 - r["mean"], 6) for r in rows], "val_accuracy": round(pooled, 6)},
            {"val_acc": pooled},
        )

    # ------------------------------------------------------------------ memory
    def step_memory(self, cfg, task) -> MemoryEstimate:
        """A language model's step: token ids, logits and the n-gram layers' (B, T, T) patterns among the
        activations."""
        import torch

        from iclab.models.encoders import Layout
        from iclab.models.size import count_layers, count_on_meta

        b, n, v = cfg.train.batch_size, task.max_tokens, task.vocab_size
        data = 8 * b * n * (3 + v)  # tokens, targets, string index, valid-symbol masks
        if cfg.train.eval_every:
            data += 8 * cfg.train.eval_prompts * n * (3 + v)

        def count(model_config):
            with torch.device("meta"):
                positions = torch.arange(n)
                model = self.build_model(model_config, task)
                layout = Layout(
                    positions=positions,
                    readout=positions,
                    attn_mask=None,
                    token_ids=torch.empty(1, n, dtype=torch.long),
                )
                return count_on_meta(model.backbone, torch.empty(b, n, dtype=torch.long), layout)

        n_params, outputs = count_layers(count, cfg.model)
        return MemoryEstimate.of_training(n_params, outputs, data)

    def data_bytes(self, cfg, task) -> int:
        return 8 * cfg.train.batch_size * (task.max_tokens + 1)

    def tokens_per_step(self, cfg, task) -> int:
        return cfg.train.batch_size * task.max_tokens

    def eval_bytes(self, task, n_prompts: int) -> int:
        """A few learners' ``(T, V)`` distributions in float64, and the n-gram learner's ``(64, T, T)`` masks."""
        n, v = task.max_tokens + 1, task.vocab_size
        return n_prompts * n * v * 8 * 8 + 64 * n * n * FLOAT * 4

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, run_dir: Path, cfg, model, step: int, task, learners: list, n_prompts: int, shifts: list[str], plot: bool
    ) -> list[dict]:
        """``eval/curves.csv`` (each metric against the task's unit), ``eval/summary.csv`` (each metric averaged
        over every scored position, and exact match where answers are decoded), ``plots/curves_tokens.png``."""
        from iclab.kinds.tokens.metrics import CURVE_COLUMNS, SUMMARY_COLUMNS, evaluate_token_learners
        from iclab.tables import write_table

        examples = task.eval_examples(n_prompts, cfg.eval.seed)
        prompts = task.batch(examples)
        network = NetworkLearner(model, cfg.eval.batch_size)
        rows, summary, _ = evaluate_token_learners([network, *learners], prompts)
        if task.generates:
            summary += _evaluate_generation(run_dir, cfg, model, task, examples)
        write_table(run_dir / "eval" / "curves.csv", rows, CURVE_COLUMNS)
        write_table(run_dir / "eval" / "summary.csv", summary, SUMMARY_COLUMNS)
        if plot:
            from iclab.kinds.tokens.figures import plot_token_curves

            plot_token_curves(
                rows,
                run_dir / "plots" / "curves_tokens.png",
                network=self.network_label(cfg.model),
                title=f"{cfg.task.name}: {n_prompts} held-out prompts, step {step}",
                xlabel=task.curve_axis,
            )
        return rows

    def summary_lines(self, rows: list[dict], cfg, run_dir: Path) -> tuple[list[str], list[str]]:
        """Each learner's metrics averaged over every scored position; exact match first where answers are
        decoded (the headline of such tasks)."""
        from iclab.kinds.tokens.metrics import SUMMARY_TYPES
        from iclab.plotting import display_name
        from iclab.tables import read_table

        summary = read_table(run_dir / "eval" / "summary.csv", SUMMARY_TYPES, what="summary file")
        network = self.network_label(cfg.model)
        have = {r["metric"] for r in summary}
        metrics = [m for m in ("exact_match", "accuracy", "tvd", "cross_entropy") if m in have]
        by = {(r["learner"], r["metric"]): r["mean"] for r in summary}
        learners = list(dict.fromkeys(r["learner"] for r in summary))
        if not learners:
            return [], []
        width = max(len(display_name(lab, network)) for lab in learners)
        lines = []
        if "exact_match" in have:
            lines.append(
                "held-out answers decoded by the network (exact_match) and next-symbol metrics averaged "
                "over every scored position"
            )
        else:
            from iclab.kinds.tokens.report import target_noun

            lines.append(f"held-out {target_noun(cfg)} metrics, averaged over every scored position")
        lines.append(" " * width + "".join(f"{m:>15}" for m in metrics))
        warnings = []
        for lab in learners:
            cells = [by.get((lab, m), float("nan")) for m in metrics]
            text = [
                "" if (lab, m) not in by else f"{v:.3f}" if math.isfinite(v) else "diverged"
                for m, v in zip(metrics, cells)
            ]
            lines.append(f"{display_name(lab, network):<{width}}" + "".join(f"{t:>15}" for t in text))
            if any(t == "diverged" for t in text):
                warnings.append(f"{display_name(lab, network)} has non-finite metrics: it diverged")
        return lines, warnings

    def report_sections(self, cfg, run_dir: Path, records: list[dict]) -> list[str]:
        from iclab.kinds.tokens.report import sections

        return sections(cfg, run_dir, records, self.network_label(cfg.model))

    def report_footer(self, cfg, task) -> str:
        from iclab.kinds.tokens.report import footer

        return footer(cfg)

    def comparison_metrics(self, run_dir: Path, cfg, k: int | None) -> list[dict]:
        """Every metric of ``eval/summary.csv`` (accuracy, tvd, cross_entropy, kl, exact_match), per learner."""
        from iclab.errors import RunFolderError
        from iclab.kinds.tokens.metrics import SUMMARY_TYPES
        from iclab.tables import read_table

        try:
            summary = read_table(run_dir / "eval" / "summary.csv", SUMMARY_TYPES, missing_ok=True)
        except RunFolderError:
            return []
        return [
            {"learner": r["learner"], "shift": "standard", "metric": r["metric"], "value": r["mean"]} for r in summary
        ]


def _evaluate_generation(run_dir: Path, cfg, model, task, examples: list) -> list[dict]:
    """Decode every held-out answer (``eval/generation.csv``: exact match overall and by group;
    ``eval/generations.jsonl``: each prompt, what the network wrote, the answer parsed); summary rows
    ``exact_match`` for the network and for the true continuations (``oracle``)."""
    import json

    from iclab.kinds.tokens.generation import GENERATION_COLUMNS, evaluate_generation
    from iclab.kinds.tokens.metrics import Z_95
    from iclab.tables import write_table
    from iclab.utils import atomic_write_text

    rows, records = evaluate_generation(
        model,
        task,
        examples,
        temperature=cfg.eval.temperature,
        top_k=cfg.eval.top_k,
        seed=cfg.eval.seed,
        batch_size=cfg.eval.batch_size,
    )
    write_table(run_dir / "eval" / "generation.csv", rows, GENERATION_COLUMNS)
    atomic_write_text(run_dir / "eval" / "generations.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    out = []
    for r in rows:
        if r["group"] == "all":
            p, n = r["exact_match"], r["n"]
            half = Z_95 * math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")
            out.append(
                {
                    "learner": r["learner"],
                    "metric": "exact_match",
                    "mean": p,
                    "ci_low": p - half,
                    "ci_high": p + half,
                    "positions": n,
                }
            )
    return out
