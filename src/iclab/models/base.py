"""A trained network as a learner: prompt encoder + sequence model + read-out positions."""

from __future__ import annotations

import torch
from torch import nn

from iclab.errors import UserError
from iclab.models.encoders import ENCODERS
from iclab.types import Prompts


class ICLModel(nn.Module):
    """A family's network (built by its config: ``config.build``) behind a prompt encoder.

    ``model(xs, ys)`` returns ``(B, N)`` predictions, ``y_hat[:, i]`` from the prefix ending at ``x_i``;
    :meth:`predict` does the same without gradients, so an ``ICLModel`` is a :class:`~iclab.types.Learner`.
    """

    label = "model"

    def __init__(self, config, n_dims: int, n_classes: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.n_dims = n_dims
        self.n_classes = n_classes  # classification: labels are one-hot encoded, outputs are C logits
        self.encoder = ENCODERS[config.encoder]
        width = 1 if n_classes is None else n_classes
        self.backbone = config.build(self.encoder.width(n_dims, width), n_outputs=width)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:  # (B, N) or (B, N, C)
        needed = self.encoder.positions_needed(xs.shape[1])
        budget = getattr(self.config, "n_positions", None)  # families without positions take any length
        if budget is not None and needed > budget:
            raise UserError(
                f"prompts of {xs.shape[1]} points need {needed} positions with the {self.encoder.name} encoder, "
                f"but model.n_positions is {self.config.n_positions}"
            )
        if xs.shape[2] != self.n_dims:
            raise UserError(f"prompts have {xs.shape[2]} input dimensions, the model was built for {self.n_dims}")
        if self.n_classes is not None:  # class indices -> one-hot label features
            ys = torch.nn.functional.one_hot(ys.long(), self.n_classes).to(xs.dtype)
        tokens, layout = self.encoder.encode(xs, ys)
        return self.backbone(tokens, layout)[:, layout.readout]

    def forward_prompts(self, prompts: Prompts) -> torch.Tensor:
        """``self(prompts.xs, prompts.ys)``: the forward pass on a batch of prompts, on the model's device."""
        return self(prompts.xs, prompts.ys)

    def layout(self, prompts: Prompts):
        """Where the encoder puts things for ``prompts`` (positions, read-out tokens, attention mask)."""
        ys = prompts.ys if self.n_classes is None else torch.nn.functional.one_hot(prompts.ys.long(), self.n_classes)
        return self.encoder.encode(prompts.xs[:1].cpu(), ys[:1].to(prompts.xs.dtype).cpu())[1]

    def predict(self, prompts: Prompts, batch_size: int = 1024) -> torch.Tensor:
        device = next(self.parameters()).device

        def part(start: int, stop: int) -> torch.Tensor:
            p = prompts[start:stop]
            return self(p.xs.to(device), p.ys.to(device)).to(prompts.ys.device)

        return predict_in_batches(self, prompts.batch_size, batch_size, part)


@torch.no_grad()
def predict_in_batches(model: nn.Module, n: int, batch_size: int, part) -> torch.Tensor:
    """``torch.cat([part(start, start + batch_size) for each batch])`` in eval mode without gradients; the model's
    training mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([part(start, min(start + batch_size, n)) for start in range(0, n, batch_size)])
    finally:
        model.train(was_training)
