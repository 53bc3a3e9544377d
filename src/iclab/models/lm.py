"""A network as a causal language model over a token task's vocabulary: token embedding, the family's blocks
(and any n-gram layers), a vocabulary read-out. ``model(tokens) -> logits (B, T, V)``, the logits at ``t`` from
``tokens[:, : t + 1]`` (or, for a task that reads its whole input, ``bidirectional``, from every non-pad token);
:meth:`LanguageModel.predict` gives next-token probabilities, so a trained network is a
token learner like the reference ones."""

from __future__ import annotations

import torch
from torch import nn

from iclab.errors import UserError
from iclab.models.encoders import Layout
from iclab.types import TokenPrompts


class LanguageModel(nn.Module):
    label = "model"

    def __init__(
        self, config, vocab_size: int, bidirectional: bool = False, pad: int = 0, n_outputs: int | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.n_outputs = n_outputs or vocab_size  # the read-out's classes: the vocabulary, or (a pretext) positions
        self.bidirectional, self.pad = bidirectional, pad
        if not type(config).read_in:
            raise ValueError(f"{config.name} has no read-in, so it cannot read tokens")
        self.backbone = config.build(vocab_size, n_outputs=self.n_outputs, vocab_size=vocab_size)

    def forward(self, tokens: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:  # (B, T, V) logits
        """Logits at every token; ``key_mask`` (B, T) bool, on a model that reads the whole input, limits the keys
        every token may attend to (position prediction's visible tokens)."""
        b, t = tokens.shape
        budget = getattr(self.config, "n_positions", None)
        if self.backbone.pos_embed is not None and budget is not None and t > budget:
            raise UserError(f"prompts of {t} tokens need {t} positions, but model.n_positions is {budget}")
        if not self.training and tokens.numel() and int(tokens.max()) >= self.vocab_size:  # no sync per training step
            raise UserError(f"token id {int(tokens.max())} is outside the model's vocabulary of {self.vocab_size}")
        return self.backbone(tokens, self._layout(tokens, key_mask))

    def _layout(self, tokens: torch.Tensor, key_mask: torch.Tensor | None = None) -> Layout:
        """Positions and read-outs at every token; causal attention, or (``bidirectional``) every non-pad key (and
        only those in ``key_mask``) as a ``(B, 1, 1, T)`` mask."""
        t = tokens.shape[1]
        if key_mask is not None and not self.bidirectional:
            raise ValueError("a key mask needs a model that reads its whole input (bidirectional)")
        keys = tokens != self.pad if key_mask is None else (tokens != self.pad) & key_mask
        mask = keys[:, None, None, :] if self.bidirectional else None
        positions = torch.arange(t, device=tokens.device)
        return Layout(positions=positions, readout=positions, attn_mask=mask, token_ids=tokens)

    def forward_prompts(self, prompts: TokenPrompts) -> torch.Tensor:
        """``self(prompts.tokens)``: the logits ``(B, T, V)`` of a batch of prompts (with their visible keys, when
        they name them)."""
        key_mask = prompts.info.get("key_mask")
        return self(prompts.tokens, key_mask=None if key_mask is None else key_mask.to(prompts.tokens.device))

    def layout(self, prompts: TokenPrompts) -> Layout:
        """A language model reads out at every token."""
        return self._layout(prompts.tokens)

    def predict(self, prompts: TokenPrompts, batch_size: int = 256) -> torch.Tensor:
        """Next-token probabilities ``(B, T, V)`` in float64 on the CPU."""
        from iclab.models.base import predict_in_batches

        device = next(self.parameters()).device

        key_mask = prompts.info.get("key_mask")

        def part(start: int, stop: int) -> torch.Tensor:
            keys = None if key_mask is None else key_mask[start:stop].to(device)
            return torch.softmax(self(prompts.tokens[start:stop].to(device), key_mask=keys).double(), -1).cpu()

        return predict_in_batches(self, prompts.batch_size, batch_size, part)
