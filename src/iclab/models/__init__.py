"""Model families. ``MODELS`` maps a config's ``model.name`` to its class; each works behind the
prompt encoders of :mod:`iclab.models.encoders` and exposes named hooks (:mod:`iclab.models.hooks`)."""

from iclab.models.base import ICLModel
from iclab.models.encoders import ENCODERS, Layout
from iclab.models.hooks import HookPoint, capture, hook_points
from iclab.models.lsa import LinearSelfAttention, LinearSelfAttentionConfig, gd_construction
from iclab.models.memory import Memory, MemoryConfig
from iclab.models.rnn import RNN, RNNConfig
from iclab.models.ssm import Mamba, MambaConfig
from iclab.models.transformer import Transformer, TransformerConfig
from iclab.schema import require

MODELS = {
    "transformer": Transformer,
    "linear_self_attention": LinearSelfAttention,
    "rnn": RNN,
    "memory": Memory,
    "mamba": Mamba,
}


def check_model_fits_task(model_config, task_config) -> None:
    """Check the encoder and position budget against the task; resolve ``n_positions`` when null."""
    family = MODELS[model_config.name]
    require(model_config.encoder in family.encoders, "model.encoder",
            f"model {model_config.name!r} takes the encoders {', '.join(family.encoders)}", model_config.encoder)
    if not hasattr(model_config, "n_positions"):  # a family without position embeddings has no budget
        return
    needed = ENCODERS[model_config.encoder].positions_needed(task_config.n_points)
    if model_config.n_positions is None:
        model_config.n_positions = needed
    else:
        require(model_config.n_positions >= needed, "model.n_positions",
                f"must be at least {needed} for prompts of task.n_points={task_config.n_points} "
                f"with the {model_config.encoder} encoder", model_config.n_positions)


def build_model(model_config, n_dims: int, n_classes: int | None = None) -> ICLModel:
    """The network of a run: ``build_model(cfg.model, cfg.task.n_dims)``; classification tasks pass
    ``n_classes`` (labels one-hot in the tokens, C logits out)."""
    return ICLModel(model_config, n_dims, n_classes)


__all__ = ["ENCODERS", "MODELS", "HookPoint", "ICLModel", "Layout", "LinearSelfAttention", "LinearSelfAttentionConfig",
           "Mamba", "MambaConfig", "Memory", "MemoryConfig", "RNN", "RNNConfig",
           "Transformer", "TransformerConfig", "gd_construction",
           "build_model", "capture", "check_model_fits_task", "hook_points"]
