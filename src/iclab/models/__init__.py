"""Model families. ``MODELS`` maps a config's ``model.name`` to the family's config class; each family is one
file that reads top to bottom (its config, its blocks, its network): :mod:`~iclab.models.transformer`,
:mod:`~iclab.models.memory`, :mod:`~iclab.models.ssm`, :mod:`~iclab.models.rnn`, :mod:`~iclab.models.lsa`,
:mod:`~iclab.models.program` (Transformer Programs, token tasks only), :mod:`~iclab.models.hybrid` (a
network from a list of those blocks). The
parts they share are imported by name from :mod:`~iclab.models.parts`; :func:`build_model` puts a family's
network behind a prompt encoder (:mod:`~iclab.models.encoders`), and a token task reads it as a
:class:`LanguageModel`. Every family exposes named hooks (:mod:`~iclab.models.hooks`): record them with
:func:`capture`, patch or ablate them with :func:`run_with_hooks`.

Importing this package imports torch (the families' configs live beside their modules).
"""

from iclab.models.base import ICLModel
from iclab.models.encoders import ENCODERS, Layout
from iclab.models.family import MODELS, ModelConfig
from iclab.models.hooks import (
    HookPoint,
    capture,
    hook_points,
    mean_ablation,
    patch_with,
    run_with_hooks,
    zero_ablation,
)
from iclab.models.hybrid import HybridConfig
from iclab.models.lm import LanguageModel
from iclab.models.lsa import LinearSelfAttentionConfig, gd_construction
from iclab.models.memory import MemoryConfig
from iclab.models.ngram_heads import NgramBlock
from iclab.models.parts import MLP
from iclab.models.program import TransformerProgramConfig
from iclab.models.rnn import RNNConfig
from iclab.models.ssm import MambaConfig
from iclab.models.transformer import TransformerConfig


def build_model(model_config, n_dims: int, n_classes: int | None = None):
    """The network of a run: ``build_model(cfg.model, cfg.task.n_dims)``; classification tasks pass
    ``n_classes`` (labels one-hot in the tokens, C logits out). Returns an :class:`ICLModel`."""
    return ICLModel(model_config, n_dims, n_classes)


__all__ = [
    "ENCODERS",
    "MLP",
    "MODELS",
    "HookPoint",
    "HybridConfig",
    "ICLModel",
    "LanguageModel",
    "Layout",
    "LinearSelfAttentionConfig",
    "MambaConfig",
    "MemoryConfig",
    "ModelConfig",
    "NgramBlock",
    "RNNConfig",
    "TransformerConfig",
    "TransformerProgramConfig",
    "build_model",
    "capture",
    "gd_construction",
    "hook_points",
    "mean_ablation",
    "patch_with",
    "run_with_hooks",
    "zero_ablation",
]
