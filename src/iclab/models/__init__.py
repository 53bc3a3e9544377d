"""Model families. ``MODELS`` maps a config's ``model.name`` to the family's config class
(:mod:`iclab.models.configs`); :func:`build_model` puts the family's blocks in the one shell
(:mod:`iclab.models.shell`) behind a prompt encoder (:mod:`iclab.models.encoders`). Every family exposes
named hooks (:mod:`iclab.models.hooks`).

Reading configs needs only the registry, so this package imports torch only when a network is built
(the names in ``_TORCH`` below are imported on first use).
"""

from iclab.lazy import exports
from iclab.models.configs import (
    MODELS,
    LinearSelfAttentionConfig,
    MambaConfig,
    MemoryConfig,
    ModelConfig,
    RNNConfig,
    TransformerConfig,
)
from iclab.models.encoders import ENCODERS, Layout
from iclab.schema import require

_TORCH = {
    "ICLModel": "iclab.models.base",
    "LanguageModel": "iclab.models.lm",
    "NgramBlock": "iclab.models.ngram",
    "Network": "iclab.models.shell",
    "MLP": "iclab.models.shell",
    "HookPoint": "iclab.models.hooks",
    "capture": "iclab.models.hooks",
    "hook_points": "iclab.models.hooks",
    "gd_construction": "iclab.models.lsa",
}

__getattr__ = exports(_TORCH, globals(), __name__)


def check_model_fits_task(model_config, task_config, tokens: bool = False, input_tokens: int | None = None) -> None:
    """Check the model against the task (``tokens``: a token task, whose prompts have up to ``input_tokens`` input
    tokens): a language model needs a read-in, n-gram layers need tokens, and the position budget must hold the
    task's prompts (``n_positions`` is resolved when null).
    (The encoder is checked against the family's ``encoders`` when the config is read.)"""
    family = type(model_config)
    if tokens:
        require(family.read_in, "model.name", f"must be a family with a token read-in for the token task "
                f"{task_config.name} ({model_config.name} reads stacked real-valued prompts only)", model_config.name)
    else:
        require(not model_config.ngram_heads, "model.ngram_heads", f"n-gram layers read token ids; task "
                f"{task_config.name} has real-valued prompts (leave it empty)", model_config.ngram_heads)
    if not hasattr(model_config, "n_positions"):  # a family without position embeddings has no budget
        return
    if tokens:
        needed = input_tokens
        if model_config.n_positions is None:
            model_config.n_positions = needed
        else:
            require(model_config.n_positions >= needed, "model.n_positions", f"must be at least {needed}: task "
                    f"{task_config.name}'s prompts have up to {needed} input tokens", model_config.n_positions)
        return
    needed = ENCODERS[model_config.encoder].positions_needed(task_config.n_points)
    if model_config.n_positions is None:
        model_config.n_positions = needed
    else:
        require(model_config.n_positions >= needed, "model.n_positions",
                f"must be at least {needed} for prompts of task.n_points={task_config.n_points} "
                f"with the {model_config.encoder} encoder", model_config.n_positions)


def build_model(model_config, n_dims: int, n_classes: int | None = None):
    """The network of a run: ``build_model(cfg.model, cfg.task.n_dims)``; classification tasks pass
    ``n_classes`` (labels one-hot in the tokens, C logits out). Returns an :class:`ICLModel`."""
    from iclab.models.base import ICLModel

    return ICLModel(model_config, n_dims, n_classes)


def build_for_task(model_config, task):
    """The network of a run on ``task`` (a built task): a :class:`LanguageModel` over its vocabulary for a token
    task, else ``build_model(model_config, task.n_dims, task.n_classes)``."""
    if getattr(task, "prompt_kind", "real") == "tokens":
        from iclab.models.lm import LanguageModel

        return LanguageModel(model_config, task.vocab_size)
    return build_model(model_config, task.n_dims, task.n_classes)


def network_label(model_config, tokens: bool = False) -> str:
    """The network's name in tables and plots (``tokens``: as a language model): ``"Transformer 2x64 + n-gram heads
    1,2"``."""
    return model_config.label(tokens=tokens) + model_config.ngram_label()


__all__ = ["ENCODERS", "MODELS", "HookPoint", "ICLModel", "Layout", "LinearSelfAttentionConfig", "MLP", "MambaConfig",
           "MemoryConfig", "ModelConfig", "Network", "RNNConfig", "TransformerConfig", "build_model", "capture",
           "check_model_fits_task", "gd_construction", "hook_points", "LanguageModel", "NgramBlock", "build_for_task",
           "network_label"]
