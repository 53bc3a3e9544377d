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

_TORCH = {
    "ICLModel": "iclab.models.base",
    "LanguageModel": "iclab.models.lm",
    "NgramBlock": "iclab.models.ngram_heads",
    "Network": "iclab.models.shell",
    "MLP": "iclab.models.shell",
    "HookPoint": "iclab.models.hooks",
    "capture": "iclab.models.hooks",
    "hook_points": "iclab.models.hooks",
    "run_with_hooks": "iclab.models.hooks",
    "zero_ablation": "iclab.models.hooks",
    "mean_ablation": "iclab.models.hooks",
    "patch_with": "iclab.models.hooks",
    "gd_construction": "iclab.models.lsa",
}

__getattr__ = exports(_TORCH, globals(), __name__)


def build_model(model_config, n_dims: int, n_classes: int | None = None):
    """The network of a run: ``build_model(cfg.model, cfg.task.n_dims)``; classification tasks pass
    ``n_classes`` (labels one-hot in the tokens, C logits out). Returns an :class:`ICLModel`."""
    from iclab.models.base import ICLModel

    return ICLModel(model_config, n_dims, n_classes)


__all__ = [
    "ENCODERS",
    "MODELS",
    "HookPoint",
    "ICLModel",
    "Layout",
    "LinearSelfAttentionConfig",
    "MLP",
    "MambaConfig",
    "MemoryConfig",
    "ModelConfig",
    "Network",
    "RNNConfig",
    "TransformerConfig",
    "build_model",
    "capture",
    "gd_construction",
    "hook_points",
    "LanguageModel",
    "NgramBlock",
    "mean_ablation",
    "patch_with",
    "run_with_hooks",
    "zero_ablation",
]
