"""Recipes: the papers' experiments as functions that return a run config.

``iclab demo`` runs :func:`demo`; ``iclab train --recipe NAME`` starts from any of ``RECIPES``.
"""

from __future__ import annotations

from iclab.config import RunConfig, run_config_from_dict, to_dict
from iclab.registry import Registry

RECIPES = Registry("recipe")  # name -> function returning a RunConfig; named by the function


@RECIPES.register
def demo() -> RunConfig:
    """Linear regression at laptop scale: d = 5, 11 points, a 4-layer width-64 transformer on 2 CPU cores.

    Uses the stacked encoder (one token per (x, y) pair, von Oswald et al.), with which in-context
    learning emerges far sooner on CPU than with Garg et al.'s interleaved encoding. Its time to in-context
    learning (squared error / d below 0.1 at k = 2d) is measured in docs/benchmarks.md.
    """
    return run_config_from_dict(
        {
            "name": "demo",
            "task": {"name": "linear_regression", "n_dims": 5, "n_points": 11},
            "model": {"name": "transformer", "encoder": "stacked", "n_layer": 4, "n_embd": 64, "n_head": 4},
            "train": {
                "steps": 3000,
                "batch_size": 64,
                "lr": 1e-3,
                "warmup_steps": 200,
                "min_lr_ratio": 0.1,
                "threads": 2,
                "log_every": 50,
                "eval_every": 100,
                "checkpoint_every": 500,
            },
            "eval": {"n_prompts": 1280},
        }
    )


def _garg2022_full_scale(name: str, task: dict) -> RunConfig:
    """Garg et al. 2022's training set-up (dtsip/in-context-learning, conf/base.yaml): d = 20, 41 points,
    curriculum 5 -> 20 dimensions and 11 -> 41 points every 2000 steps, GPT-2 12 layers x 256 wide x 8 heads
    on interleaved tokens, batch 64, Adam 1e-4, 500k steps."""
    return run_config_from_dict(
        {
            "name": name,
            "task": {
                **task,
                "n_dims": 20,
                "n_points": 41,
                "curriculum": {
                    "dims_start": 5,
                    "dims_inc": 1,
                    "dims_every": 2000,
                    "points_start": 11,
                    "points_inc": 2,
                    "points_every": 2000,
                },
            },
            "model": {
                "name": "transformer",
                "encoder": "interleaved",
                "n_layer": 12,
                "n_embd": 256,
                "n_head": 8,
                "n_positions": 101,
            },
            "train": {
                "steps": 500_000,
                "batch_size": 64,
                "lr": 1e-4,
                "warmup_steps": 0,
                "min_lr_ratio": 1.0,
                "grad_clip": 0.0,
                "log_every": 100,
                "eval_every": 2000,
                "checkpoint_every": 2000,
            },
        }
    )


@RECIPES.register
def garg2022_linear_regression() -> RunConfig:
    """Garg et al. 2022, linear regression at full scale (a GPU job; settings in :func:`_garg2022_full_scale`)."""
    return _garg2022_full_scale("garg2022_linear_regression", {"name": "linear_regression"})


@RECIPES.register
def garg2022_sparse_regression_full() -> RunConfig:
    """Garg et al. 2022, sparse regression (3 nonzero of 20) at full scale (a GPU job): the run whose model
    sits near Lasso for fewer than d examples; at CPU scale the model stays with least squares."""
    return _garg2022_full_scale("garg2022_sparse_regression_full", {"name": "sparse_linear_regression", "sparsity": 3})


def _cpu_model() -> dict:
    return {"name": "transformer", "encoder": "stacked", "n_layer": 4, "n_embd": 64, "n_head": 4}


def _cpu_train(steps: int = 3000) -> dict:
    return {
        "steps": steps,
        "batch_size": 64,
        "lr": 1e-3,
        "warmup_steps": 200,
        "threads": 2,
        "eval_every": 500,
        "checkpoint_every": 1000,
    }


def _token_train(steps: int, lr: float, eval_every: int, eval_prompts: int, checkpoint_every: int) -> dict:
    """The token recipes' training: batch 64, AdamW with weight decay 0.1, 100 warm-up steps, cosine to a tenth."""
    return {
        "steps": steps,
        "batch_size": 64,
        "lr": lr,
        "weight_decay": 0.1,
        "warmup_steps": 100,
        "min_lr_ratio": 0.1,
        "log_every": 100,
        "eval_every": eval_every,
        "eval_prompts": eval_prompts,
        "checkpoint_every": checkpoint_every,
    }


@RECIPES.register
def raventos2023_task_pool(pool_size: int = 8) -> RunConfig:
    """Raventós et al. 2023 at CPU scale: noisy regression (d = 8, 16 points, sigma = 0.5) over a fixed
    pool of M tasks; with small M the model tracks dMMSE on pool tasks (docs/catalogue.md)."""
    return run_config_from_dict(
        {
            "name": f"raventos2023_pool{pool_size}",
            "task": {"name": "task_pool", "n_dims": 8, "n_points": 16, "noise_std": 0.5, "pool_size": pool_size},
            "model": _cpu_model(),
            "train": _cpu_train(),
        }
    )


@RECIPES.register
def panwar2023_haar(max_level: int = 3, steps: int = 3000) -> RunConfig:
    """Haar wavelet regression of Panwar et al. 2023 at CPU scale: x ~ U(0, 1), combinations of the 2^(L + 1) Haar
    functions up to level ``max_level`` (16 at L = 3), 21 points, the demo's 4 x 64 transformer on stacked tokens,
    ``steps`` steps; compared with least squares on the Haar basis (the Bayes predictor), least squares on x, 3-NN.
    ``iclab analyze RUN --only spectrum`` does not apply (the domain is not periodic); docs/catalogue.md has its
    curve."""
    return run_config_from_dict(
        {
            "name": f"panwar2023_haar{max_level}",
            "task": {"name": "haar_wavelets", "max_level": max_level, "n_points": 21},
            "model": _cpu_model(),
            "train": {**_cpu_train(steps), "eval_every": 100},
        }
    )


ICL2024_TASKS = {  # the 2024 successor codebase's function classes at CPU scale
    "sparse_parity": {"name": "sparse_parity", "n_dims": 6, "k": 2, "n_points": 21},
    "chebyshev_kernel": {"name": "chebyshev_kernel_regression", "n_points": 21},
    "chebyshev_shared_roots": {"name": "chebyshev_shared_roots", "n_points": 21},
    "vector_retrieval": {"name": "vector_retrieval", "n_dims": 5, "n_points": 11},
}


@RECIPES.register
def icl2024_task(task: str = "sparse_parity", steps: int = 3000) -> RunConfig:
    """One function class of the 2024 successor of Garg et al.'s codebase (in-context-learning-2024/in-context) at CPU
    scale: ``task`` is sparse_parity (d = 6, k = 2, 21 points), chebyshev_kernel (T_3 .. T_11 cut at a random
    degree, 21 points), chebyshev_shared_roots (degree 5, 21 points) or vector_retrieval (d = 5, 11 points); the demo's
    4 x 64 transformer on stacked tokens, ``steps`` steps of AdamW 1e-3; compared with each task's exact or Bayes
    learner. ``python benchmarks/icl2024_tasks.py`` trains all four and draws their curves (docs/catalogue.md)."""
    from iclab.errors import ConfigError

    if task not in ICL2024_TASKS:
        raise ConfigError(f"icl2024_task(task=...): must be one of {', '.join(ICL2024_TASKS)}, got {task!r}")
    return run_config_from_dict(
        {
            "name": f"icl2024_{task}",
            "task": ICL2024_TASKS[task],
            "model": _cpu_model(),
            "train": {**_cpu_train(steps), "eval_every": 100},
        }
    )


@RECIPES.register
def garg2022_sparse_regression() -> RunConfig:
    """Garg et al. 2022's sparse regression (k = 3 of d = 10) at CPU scale; compared with Lasso."""
    return run_config_from_dict(
        {
            "name": "garg2022_sparse_regression",
            "task": {"name": "sparse_linear_regression", "n_dims": 10, "n_points": 21, "sparsity": 3},
            "model": _cpu_model(),
            "train": _cpu_train(),
        }
    )


@RECIPES.register
def guo2023_representation() -> RunConfig:
    """Guo et al. 2023 at CPU scale: y = <w, Phi(x)> + noise with a fixed random MLP Phi; the model
    approaches ridge on Phi(x), not ridge on x."""
    return run_config_from_dict(
        {
            "name": "guo2023_representation",
            "task": {"name": "representation", "n_dims": 5, "n_points": 21, "noise_std": 0.1},
            "model": _cpu_model(),
            "train": _cpu_train(),
        }
    )


@RECIPES.register
def kirsch2022_digits(n_tasks: int | None = None) -> RunConfig:
    """Kirsch et al. 2022 at CPU scale: in-context classification of randomly projected, label-permuted
    digits; ``n_tasks`` fixed tasks (null: a fresh task per prompt)."""
    return run_config_from_dict(
        {
            "name": "kirsch2022_digits" + ("" if n_tasks is None else f"_{n_tasks}tasks"),
            "task": {"name": "digits_classification", "n_dims": 16, "n_points": 31, "n_tasks": n_tasks},
            "model": _cpu_model(),
            "train": _cpu_train(4000),
        }
    )


@RECIPES.register
def von_oswald2022_lsa(steps: int = 5000) -> RunConfig:
    """von Oswald et al. 2022: one linear self-attention layer on d = 10, N = 10 context points,
    x ~ U(-0.5, 0.5), w ~ N(0, I), no noise; Adam 1e-3, batch 2048, loss at the query. Compare with one GD
    step at the best step size (benchmarks/von_oswald.py)."""
    return run_config_from_dict(
        {
            "name": "von_oswald2022_lsa",
            "task": {
                "name": "linear_regression",
                "n_dims": 10,
                "n_points": 11,
                "x_distribution": "uniform",
                "x_scale": 0.5,
            },
            "model": {"name": "linear_self_attention", "n_layer": 1},
            "train": {
                "steps": steps,
                "batch_size": 2048,
                "lr": 1e-3,
                "warmup_steps": 0,
                "min_lr_ratio": 1.0,
                "grad_clip": 0.0,
                "loss_on": "last",
                "log_every": 100,
                "eval_every": 500,
                "checkpoint_every": 1000,
                "threads": 2,
            },
            "eval": {"learners": ["least_squares", "gd(steps=1, lr=6.1)", "zero"]},
        }
    )


@RECIPES.register
def akyurek2022_alignment(noise_std: float = 0.0, steps: int = 4000) -> RunConfig:
    """Akyürek et al. 2022 at CPU scale: linear regression d = 5, 16 points (so k >= d has room), optional
    label noise; a 4-layer width-64 transformer (stacked encoder). Evaluated against least squares, ridge
    at several lambdas (including sigma^2), one-step and online GD and 3-NN; ``iclab analyze`` then says
    which of them the model's predictions (SPD) and implicit weights (ILWD) are closest to
    (``benchmarks/akyurek_alignment.py`` runs the noiseless and the sigma = 1 version)."""
    lam = f"{noise_std**2:g}" if noise_std > 0 else "1"
    return run_config_from_dict(
        {
            "name": "akyurek2022_alignment" + (f"_noise{noise_std:g}" if noise_std else ""),
            "task": {"name": "linear_regression", "n_dims": 5, "n_points": 16, "noise_std": noise_std},
            "model": {"name": "transformer", "encoder": "stacked", "n_layer": 4, "n_embd": 64, "n_head": 4},
            "train": {
                "steps": steps,
                "batch_size": 64,
                "lr": 1e-3,
                "warmup_steps": 200,
                "min_lr_ratio": 0.1,
                "threads": 2,
                "log_every": 50,
                "eval_every": 500,
                "checkpoint_every": 1000,
            },
            "eval": {
                "n_prompts": 1280,
                "learners": [
                    "least_squares",
                    "ridge(lam=0.1)",
                    f"ridge(lam={lam})",
                    "ridge(lam=3)",
                    "gd(steps=1, lr=0.5)",
                    "online_gd(lr=0.1)",
                    "knn(k=3)",
                    "zero",
                ],
            },
        }
    )


# ----------------------------------------------------------------------------------------------
# in-context language learning (Akyürek, Wang, Kim, Andreas 2024; REGBENCH)

# the paper's models (berlino/seq_icl, configs/experiment/dfa/*.yaml), in iclab's families
_ICLL_MODELS = {
    "transformer": {"name": "transformer", "n_layer": 8, "n_embd": 128, "n_head": 2, "dropout": 0.0},
    "transformer_ngram": {
        "name": "transformer",
        "n_layer": 8,
        "n_embd": 128,
        "n_head": 2,
        "ngram_heads": [1, 2, 3],
        "ngram_after": 1,
    },
    "lstm": {"name": "rnn", "cell": "lstm", "n_layer": 1, "n_embd": 512},
    "delta": {"name": "memory", "rule": "delta", "n_layer": 4, "n_embd": 256, "n_head": 2, "token_shift": False},
    "mamba": {"name": "mamba", "n_layer": 4, "n_embd": 128},
    "mamba_ngram": {"name": "mamba", "n_layer": 4, "n_embd": 128, "ngram_heads": [1, 2, 3], "ngram_after": 1},
}


@RECIPES.register
def akyurek2024_regbench(steps: int = 2000) -> RunConfig:
    """REGBENCH at CPU scale (Akyürek et al. 2024): 10,000 training automata, prompts cut at 256 tokens (the
    paper cuts at 512; attention's cost grows with the square of the length), a 2-layer width-64 transformer with 2
    heads, learned positions and Primer's depthwise q/k/v convolution over 3 tokens (So et al. 2021; ``--set
    model.qkv_conv=0`` for the GPT-2 block), batch 32, AdamW 3e-3 with weight decay 0.1, 2000 steps on 2 threads;
    evaluated on 500 held-out automata against the oracle and the in-context 1- to 4-gram learners.
    ``benchmarks/regbench.py families`` trains it, the GPT-2 block, the other families and the transformers with n-gram
    heads on the same data; docs/tokens.md has the
    results and the training times."""
    return run_config_from_dict(
        {
            "name": "akyurek2024_regbench",
            "task": {"name": "regbench", "n_train": 10000, "max_length": 256},
            "model": {"name": "transformer", "n_layer": 2, "n_embd": 64, "n_head": 2, "qkv_conv": 3},
            "train": {
                "steps": steps,
                "batch_size": 32,
                "lr": 3e-3,
                "weight_decay": 0.1,
                "warmup_steps": 100,
                "min_lr_ratio": 0.1,
                "threads": 2,
                "log_every": 50,
                "eval_every": 250,
                "eval_prompts": 64,
                "checkpoint_every": 500,
            },
            "eval": {"n_prompts": 500, "batch_size": 64},
        }
    )


@RECIPES.register
def akyurek2024_regbench_paper(model: str = "transformer", n_train: int = 10000, epochs: int = 400) -> RunConfig:
    """Akyürek et al. 2024's REGBENCH training at full scale (a GPU job): ``n_train`` training automata (the paper
    sweeps 1k-40k), batch 32, AdamW lr 5e-4 with weight decay 0.1, warm-up over the first tenth, cosine to a tenth,
    ``epochs`` passes over the data (seq_icl's ``configs/experiment/dfa/base.yaml``: 400), 500 held-out automata.
    ``model`` is one of transformer (8 layers, width 128, 2 heads), transformer_ngram (the same with n-gram heads
    of orders 1-3 after block 1, the paper's hybrid), lstm, delta (DeltaNet-style memory), mamba, mamba_ngram."""
    from iclab.errors import ConfigError

    if model not in _ICLL_MODELS:
        raise ConfigError(f"model: must be one of {', '.join(_ICLL_MODELS)}, got {model!r}")
    steps = -(-n_train // 32) * epochs
    return run_config_from_dict(
        {
            "name": f"akyurek2024_regbench_{model}_{n_train}",
            "task": {"name": "regbench", "n_train": n_train},
            "model": dict(_ICLL_MODELS[model]),
            "train": {
                "steps": steps,
                "batch_size": 32,
                "lr": 5e-4,
                "weight_decay": 0.1,
                "warmup_steps": steps // 10,
                "min_lr_ratio": 0.1,
                "log_every": 100,
                "eval_every": 2000,
                "eval_prompts": 500,
                "checkpoint_every": 5000,
            },
            "eval": {"n_prompts": 500, "batch_size": 64},
        }
    )


@RECIPES.register
def lee2023_arithmetic(format: str = "reverse", n_train: int = 2000, steps: int = 2000) -> RunConfig:
    """3-digit addition at CPU scale (Lee et al. 2023, "Teaching Arithmetic to Small Transformers"): ``n_train``
    balanced training examples in ``format`` (plain, reverse, simple_scratchpad, scratchpad), loss on every token,
    a 2-layer width-128 transformer with 4 heads (the paper's nanoGPT has 6 layers of width 384), batch 64, AdamW
    1e-3 with warm-up and cosine decay, ``steps`` steps; evaluated by greedy decoding on 500 held-out pairs
    (exact match). The learned positions cover the longest detailed scratchpad of 4-digit numbers, so one model
    size serves every format and a 4-digit length-generalisation test (``task.eval_digits=4``); ``iclab sweep
    lee2023`` runs the sample-efficiency grid of formats and sizes."""
    from iclab.errors import ConfigError
    from iclab.tasks.arithmetic import FORMATS, longest_example

    if format not in FORMATS:
        raise ConfigError(f"format: must be one of {', '.join(FORMATS)}, got {format!r}")
    return run_config_from_dict(
        {
            "name": "lee2023_arithmetic",
            "task": {"name": "arithmetic", "format": format, "n_train": n_train, "n_digits": 3},
            "model": {
                "name": "transformer",
                "n_layer": 2,
                "n_embd": 128,
                "n_head": 4,
                "n_positions": longest_example("scratchpad", 4) - 1,
            },
            "train": {
                "steps": steps,
                "batch_size": 64,
                "lr": 1e-3,
                "weight_decay": 0.1,
                "warmup_steps": 100,
                "min_lr_ratio": 0.1,
                "log_every": 50,
                "eval_every": 500,
                "eval_prompts": 128,
                "checkpoint_every": 500,
            },
            "eval": {"n_prompts": 500, "batch_size": 250},
        }
    )


@RECIPES.register
def friedman2023_rasp(program: str = "sort", steps: int = 3000) -> RunConfig:
    """One task of the RASP suite of Friedman et al. 2023 ("Learning Transformer Programs") at CPU scale: the
    paper's vocabulary and lengths for ``program`` (reverse, sort, hist, double_hist, most_freq, dyck1, dyck2,
    induction), 8,000 distinct training inputs, a 2-layer width-64 transformer with 4 heads, batch 64, AdamW 3e-3,
    ``steps`` steps; token accuracy on 1,000 held-out inputs. ``python benchmarks/token_tasks.py rasp`` trains
    every program."""
    from iclab.errors import ConfigError
    from iclab.tasks.rasp import PROGRAMS

    if program not in PROGRAMS:
        raise ConfigError(f"program: must be one of {', '.join(PROGRAMS)}, got {program!r}")
    return run_config_from_dict(
        {
            "name": "friedman2023_rasp",
            "task": {"name": "rasp", "program": program, "n_train": 8000},
            "model": {"name": "transformer", "n_layer": 2, "n_embd": 64, "n_head": 4},
            "train": _token_train(steps, lr=3e-3, eval_every=500, eval_prompts=256, checkpoint_every=1000),
            "eval": {"n_prompts": 1000, "batch_size": 500},
        }
    )


# Friedman et al. 2023, the paper's appendix (and its scripts): layers, categorical / numerical heads, categorical /
# numerical MLPs per task; epochs of 16.2k inputs at batch 512. double_hist has the size of the program the
# reference repository gives as its best (4 + 4 heads a layer): at 2 + 2 heads it stays near 65% (docs/programs.md)
PROGRAM_SETTINGS = {
    "reverse": (3, 4, 4, 1, 1),
    "sort": (3, 4, 4, 2, 2),
    "hist": (1, 2, 2, 1, 1),
    "double_hist": (3, 4, 4, 1, 1),
    "most_freq": (3, 4, 4, 2, 2),
    "dyck1": (3, 4, 4, 1, 1),
    "dyck2": (3, 2, 2, 2, 2),
    "induction": (2, 1, 0, 0, 0),
}


@RECIPES.register
def friedman2023_program(
    program: str = "sort", seed: int = 0, epochs: int = 250, family: str = "transformer_program"
) -> RunConfig:
    """Table 1 of Friedman et al. 2023 ("Learning Transformer Programs"): one task of the RASP suite on the paper's
    data (``task.data: paper``: 16,200 distinct training inputs, 15,800 for sort and reverse), a Transformer Program
    of the paper's size for that task (its appendix: ``PROGRAM_SETTINGS``), Adam at lr 0.05 with no schedule, batch
    512, the Gumbel temperature annealed from 3 to 0.01, ``epochs`` passes over the training set (the paper: 250;
    500 for induction); token accuracy on 2,000 held-out inputs. ``family: transformer`` trains a standard
    transformer of the same depth (width 64, 4 heads, AdamW 1e-3) on the same data. ``iclab sweep friedman2023``
    runs the suite over seeds; ``iclab decompile RUN`` writes the program."""
    from iclab.errors import ConfigError
    from iclab.tasks.rasp import PROGRAMS

    if program not in PROGRAMS:
        raise ConfigError(f"program: must be one of {', '.join(PROGRAMS)}, got {program!r}")
    if family not in ("transformer_program", "transformer"):
        raise ConfigError(f"family: must be transformer_program or transformer, got {family!r}")
    if epochs < 1:
        raise ConfigError(f"epochs: must be a positive integer, got {epochs}")
    n_train = 15800 if program in ("sort", "reverse") else 16200
    steps = epochs * -(-n_train // 512)
    layers, heads_cat, heads_num, mlps_cat, mlps_num = PROGRAM_SETTINGS[program]
    if family == "transformer_program":
        model = {
            "name": "transformer_program",
            "n_layer": layers,
            "n_heads_cat": heads_cat,
            "n_heads_num": heads_num,
            "n_cat_mlps": mlps_cat,
            "n_num_mlps": mlps_num,
            "d_mlp": 64,
            "tau_start": 3.0,
            "tau_end": 0.01,
        }
        optim = {"lr": 0.05, "weight_decay": 0.0}
    else:
        model = {"name": "transformer", "n_layer": layers, "n_embd": 64, "n_head": 4}
        optim = {"lr": 1e-3, "weight_decay": 0.0}
    return run_config_from_dict(
        {
            "name": f"friedman2023_{program}_{'program' if family == 'transformer_program' else 'transformer'}",
            "task": {"name": "rasp", "program": program, "data": "paper", "n_train": n_train},
            "model": model,
            "train": {
                "steps": steps,
                "batch_size": 512,
                **optim,
                "warmup_steps": 0,
                "min_lr_ratio": 1.0,
                "grad_clip": 0.0,
                "seed": seed,
                "threads": 1,
                "log_every": max(steps // 50, 1),
                "eval_every": max(steps // 10, 1),
                "eval_prompts": 500,
                "checkpoint_every": max(steps // 4, 1),
            },
            "eval": {"n_prompts": 2000, "batch_size": 500},
        }
    )


# Zoology's families at CPU scale: two layers each. The memory layers keep their token shift (keys from the
# previous token, like the short convolution of Zoology's attention-free models), and attention gets the same
# (`token_shift`) and rotary positions: without them a 2-layer transformer sits on MQAR's plateau for
# thousands of steps at this scale (docs/token_tasks.md)
MQAR_FAMILIES = {
    "attention": {"name": "transformer", "n_layer": 2, "n_head": 2, "positional": "rope", "token_shift": True},
    "linear_attention": {"name": "memory", "rule": "linear", "n_layer": 2, "n_head": 2},
    "delta": {"name": "memory", "rule": "delta", "n_layer": 2, "n_head": 2},
    "mamba": {"name": "mamba", "n_layer": 2, "d_state": 16},
    "lstm": {"name": "rnn", "cell": "lstm", "n_layer": 2},
    # one attention layer (as "attention") and one delta-rule layer (as "delta"), each with its MLP
    "hybrid": {
        "name": "hybrid",
        "n_layer": 1,
        "n_head": 2,
        "blocks": ["attention(rope=true, token_shift=true)", "mlp", "memory(rule=delta)", "mlp"],
        "positional": "none",
    },
}


@RECIPES.register
def arora2023_mqar(family: str = "attention", n_embd: int = 64, seq_len: int = 64, steps: int = 1000) -> RunConfig:
    """Multi-query associative recall (Arora et al. 2023, "Zoology") at CPU scale: ``seq_len`` tokens holding
    ``seq_len / 8`` key-value pairs, vocabulary 256, a fresh prompt every item, a two-layer ``family`` network
    (attention, linear_attention, delta, mamba, lstm, or hybrid: an attention layer, then a delta-rule layer) of
    width ``n_embd``, batch 64, AdamW 1e-3, ``steps`` steps;
    accuracy at the queries of 500 held-out prompts. ``iclab sweep arora2023`` runs the width x length grid."""
    from iclab.errors import ConfigError

    if family not in MQAR_FAMILIES:
        raise ConfigError(f"family: must be one of {', '.join(MQAR_FAMILIES)}, got {family!r}")
    return run_config_from_dict(
        {
            "name": f"arora2023_mqar_{family}",
            "task": {"name": "mqar", "seq_len": seq_len, "n_pairs": seq_len // 8, "vocab_size": 256, "n_train": None},
            "model": {**MQAR_FAMILIES[family], "n_embd": n_embd},
            "train": _token_train(steps, lr=1e-3, eval_every=500, eval_prompts=128, checkpoint_every=500),
            "eval": {"n_prompts": 500, "batch_size": 250},
        }
    )


@RECIPES.register
def hase2021_explanations(
    context: str = "xey", n_demos: int = 1, n_tasks: int = 5000, max_int: int = 20, steps: int = 8000
) -> RunConfig:
    """Hase & Bansal 2021 ("When Can Models Learn From Explanations?", code peterbhase/ExplanationRoles) at CPU
    scale: their synthetic counting task over ``n_tasks`` tasks with integers 1 .. ``max_int`` (the reference: 500
    tasks, 100 integers), ``n_demos`` retrieved demonstrations of the query's task showing ``context`` (``xey``:
    point, label and explanation; ``xy``: no explanation; ``e``: the explanation alone; ``n_demos=0``: the query
    alone, the no-retrieval baseline), a fresh prompt every item, every label in the prompt scored, a 3-layer
    width-64 transformer with learned positions, batch 64, AdamW 1e-3, ``steps`` steps; accuracy on 1,000 held-out
    prompts against the demonstrations before each label. ``python benchmarks/explanations.py`` trains the
    conditions side by side; docs/token_tasks.md says why these settings."""
    return run_config_from_dict(
        {
            "name": f"hase2021_explanations_{context if n_demos else 'none'}",
            "task": {
                "name": "explanations",
                "context": context,
                "n_demos": n_demos,
                "n_tasks": n_tasks,
                "max_int": max_int,
                "n_train": None,
                "score": "all",
            },
            "model": {"name": "transformer", "n_layer": 3, "n_embd": 64, "n_head": 4},
            "train": _token_train(steps, lr=1e-3, eval_every=250, eval_prompts=256, checkpoint_every=1000),
            "eval": {"n_prompts": 1000, "batch_size": 500},
        }
    )


@RECIPES.register
def zhai2022_positions(order: str = "sorted", visible: float = 0.5, length: int = 12, steps: int = 2000) -> RunConfig:
    """Position prediction as a pretext task (Zhai et al. 2022, "Position Prediction as an Effective Pretraining
    Strategy") at CPU scale: ``ordered_set`` prompts of ``length`` distinct symbols of 26 in ``order`` (sorted: the
    content gives positions away; shuffled: it cannot), every token predicting its own position from the ``visible``
    share of the tokens, a 2-layer width-64 transformer with no position embeddings reading the prompt at once,
    batch 64, AdamW 1e-3, ``steps`` steps; accuracy on 1,000 held-out prompts beside the exact posterior
    (``position_bayes``). Fine-tune it with positions: ``iclab finetune RUN --method full --set task.name=ordered_set
    --set model.positional=learned`` (docs/tokens.md)."""
    from iclab.errors import ConfigError

    if order not in ("sorted", "shuffled"):
        raise ConfigError(f"order: must be sorted or shuffled, got {order!r}")
    return run_config_from_dict(
        {
            "name": f"zhai2022_positions_{order}",
            "task": {
                "name": "position_prediction",
                "base": {"name": "ordered_set", "order": order, "length": length},
                "visible": visible,
            },
            "model": {"name": "transformer", "n_layer": 2, "n_embd": 64, "n_head": 4, "positional": "none"},
            "train": _token_train(steps, lr=1e-3, eval_every=250, eval_prompts=256, checkpoint_every=1000),
            "eval": {"n_prompts": 1000, "batch_size": 500},
        }
    )


__all__ = [
    "RECIPES",
    "akyurek2022_alignment",
    "akyurek2024_regbench",
    "akyurek2024_regbench_paper",
    "arora2023_mqar",
    "zhai2022_positions",
    "demo",
    "friedman2023_program",
    "friedman2023_rasp",
    "garg2022_linear_regression",
    "garg2022_sparse_regression",
    "garg2022_sparse_regression_full",
    "guo2023_representation",
    "hase2021_explanations",
    "kirsch2022_digits",
    "lee2023_arithmetic",
    "raventos2023_task_pool",
    "von_oswald2022_lsa",
]


# He et al. 2022 at CPU scale: the budget knob of each method (its rank, bottleneck or prefix length)
PETL_BUDGET = {
    "lora": ("r",),
    "adapter": ("bottleneck",),
    "parallel_adapter": ("bottleneck",),
    "prefix": ("prefix_length",),
    "mam": ("prefix_length", "bottleneck"),
}
# the families fine-tuned to from linear regression (d = 5, 11 points, as the base): sparse, nonlinear, noisy
PETL_TASKS = {
    "sparse": {"name": "sparse_linear_regression", "sparsity": 2},
    "nonlinear": {"name": "monomial_regression", "n_monomials": 5},
    "noisy": {"name": "linear_regression", "noise_std": 0.5},
}


@RECIPES.register
def he2022_base() -> RunConfig:
    """The network He et al. 2022's recipe fine-tunes: the demo's (linear regression, d = 5, 11 points, a 4 x 64
    transformer on stacked tokens, 3000 steps), written to ``runs/he2022_base``."""
    cfg = demo()
    cfg.name = "he2022_base"
    return cfg


@RECIPES.register
def he2022_petl(
    method: str = "lora", budget: int = 4, family: str = "sparse", base: str = "runs/he2022_base", steps: int = 1000
) -> RunConfig:
    """He et al. 2022 ("Towards a Unified View of Parameter-Efficient Transfer Learning") at CPU scale: the
    ``he2022_base`` run (train it first: ``iclab train --recipe he2022_base``) fine-tuned to another task
    ``family`` (sparse: 2 of 5 coordinates; nonlinear: 5 degree-2 monomials; noisy: sigma = 0.5) with ``method``
    at ``budget`` (LoRA's rank, the adapters' bottleneck, the prefix length; both for mam; unused by full and
    readout), the base frozen, ``steps`` steps of AdamW at 2e-3. ``iclab sweep he2022_petl`` runs every method at
    three budgets on the three families; ``python benchmarks/petl_figure.py sweeps/he2022_petl`` plots error
    against trainable parameters (docs/changing.md)."""
    from iclab.config import PETL_METHODS
    from iclab.errors import ConfigError

    if method not in PETL_METHODS:
        raise ConfigError(f"method: must be one of {', '.join(PETL_METHODS)}, got {method!r}")
    if family not in PETL_TASKS:
        raise ConfigError(f"family: must be one of {', '.join(PETL_TASKS)}, got {family!r}")
    if budget < 1:
        raise ConfigError(f"budget: must be a positive integer, got {budget}")
    data = to_dict(he2022_base())
    data["name"] = f"he2022_{family}_{method}" + (f"{budget}" if method in PETL_BUDGET else "")
    data["task"] = {**PETL_TASKS[family], "n_dims": 5, "n_points": 11}
    data["start"] = {"run": base, "step": None}
    data["finetune"] = {"method": method, **{knob: budget for knob in PETL_BUDGET.get(method, ())}}
    data["train"].update(steps=steps, lr=2e-3, warmup_steps=50, eval_every=steps // 4, checkpoint_every=steps)
    data["eval"] = {"n_prompts": 640}
    return run_config_from_dict(data)


@RECIPES.register
def wang2024_tokenformer(param_tokens: int = 16, steps: int = 3000) -> RunConfig:
    """TokenFormer (Wang et al. 2024, "TokenFormer: Rethinking Transformer Scaling with Tokenized Model Parameters")
    at CPU scale: the demo's task and transformer (linear regression, d = 5, 11 points, 4 x 64 on stacked tokens)
    with every projection and the feed-forward a Pattention layer of ``param_tokens`` parameter tokens.
    ``iclab grow RUN --param-tokens N`` grows a finished run; ``python benchmarks/grow_compare.py`` grows one at
    half its steps and compares it with the larger network trained from scratch for as many steps in all
    (docs/changing.md)."""
    data = to_dict(demo())
    data["name"] = f"wang2024_tokenformer{param_tokens}"
    data["model"].update(linear="pattention", param_tokens=param_tokens)
    data["train"].update(steps=steps, eval_every=100, checkpoint_every=steps)
    return run_config_from_dict(data)
