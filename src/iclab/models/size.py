"""How big a network is, without building it or with nothing but shapes: parameters and activations counted by a
forward pass on PyTorch's ``meta`` device (no memory is used), and the memory a training step needs.

A prompt kind turns these counts into a :class:`MemoryEstimate` of one training step
(:meth:`iclab.kinds.PromptKind.step_memory`); :func:`iclab.training.device_memory.check_fits` compares it with
what the device has. Each family's config also gives a closed-form lower bound on its parameters
(``ModelConfig.parameters_lower_bound``), so that sizes no machine can hold are refused before any module is
built.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT = 4  # bytes per float32


@dataclass
class MemoryEstimate:
    """Bytes of one float32 training step, by part."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int
    data: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations + self.data

    def dominant(self) -> str:
        parts = {
            "parameters": self.parameters + self.gradients + self.optimizer,
            "activations": self.activations,
            "data": self.data,
        }
        return max(parts, key=parts.get)

    @classmethod
    def of_training(cls, n_params: int, activation_elements: int, data_bytes: int) -> MemoryEstimate:
        """AdamW training: a gradient and two moments per parameter; autograd keeps about as much again of the
        activations for the backward pass."""
        return cls(
            parameters=FLOAT * n_params,
            gradients=FLOAT * n_params,
            optimizer=2 * FLOAT * n_params,
            activations=2 * FLOAT * activation_elements,
            data=data_bytes,
        )


def count_on_meta(model, *inputs) -> tuple[int, int]:
    """``(parameters, activation elements)`` of ``model`` (built under ``torch.device("meta")``): its parameters,
    and the elements of every module's output in one forward pass on ``inputs``."""
    import torch

    n_params = sum(p.numel() for p in model.parameters())
    outputs = [0]

    def count(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            outputs[0] += output.numel()
        elif isinstance(output, tuple):
            outputs[0] += sum(o.numel() for o in output if isinstance(o, torch.Tensor))

    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return n_params, outputs[0]


def count_layers(count, model_config) -> tuple[int, int]:
    """``count(config) -> (parameters, activation elements)`` for ``model_config``, from networks of one and two
    layers: every family's layers are alike, so both grow linearly in ``n_layer`` (exact, and tested against the
    direct count), and a million layers cost no more to count than two."""
    from dataclasses import replace

    n = model_config.n_layer
    if n <= 2:
        return count(model_config)
    p1, a1 = count(replace(model_config, n_layer=1, ngram_after=min(model_config.ngram_after, 1)))
    p2, a2 = count(replace(model_config, n_layer=2, ngram_after=min(model_config.ngram_after, 1)))
    return p1 + (n - 1) * (p2 - p1), a1 + (n - 1) * (a2 - a1)
