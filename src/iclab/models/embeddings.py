"""Frozen input embeddings for token tasks (``model.embedding``), after Bochkov 2025, "Emergent Semantics Beyond
Token Embeddings: Transformer LMs with Frozen Visual Unicode Representations": the embedding table is fixed before
training and never trained, so whatever the network learns about the tokens it learns in its blocks.

- ``frozen_glyph``: each token's text rendered with DejaVu Sans (the font matplotlib ships) into a ``size x size``
  bitmap, binarised at half intensity, the bitmaps of the vocabulary reduced by PCA (centred, the leading right
  singular vectors) to at most ``n_embd`` components, and each row scaled to unit length. Whitespace and control
  characters have no ink, so they are drawn as visible stand-ins (space ``␣``, newline ``↵``, tab ``⇥``, others in
  caret notation, ``^A``); a character the font lacks is drawn as its code point (``U+2400``). A vocabulary with
  fewer tokens than ``n_embd`` spans fewer than ``n_embd`` components: the others are zero. Two tokens that render
  alike are refused (their embeddings would be equal).
- ``frozen_random``: a random table with orthonormal rows (the first ``V`` rows of a random orthogonal matrix when
  ``V <= n_embd``; otherwise ``n_embd`` orthonormal columns, rows scaled to unit length), drawn from the run's
  seed, as the control.
- ``trainable``: the family's own embedding, trained (the default).

The frozen table stays a parameter (``requires_grad`` false), so checkpoints hold it and a run resumes bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from iclab.errors import ConfigError

EMBEDDINGS = ("trainable", "frozen_random", "frozen_glyph")
_STAND_INS = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}


def _font():
    from pathlib import Path

    import matplotlib
    from matplotlib import ft2font

    return ft2font.FT2Font(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"))


def glyph_text(symbol: str, has_glyph=None) -> str:
    """What is drawn for ``symbol``: the symbol, with whitespace and control characters replaced by visible
    stand-ins and characters the font lacks by their code points."""
    out = []
    for ch in symbol:
        if ch in _STAND_INS:
            out.append(_STAND_INS[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append("^" + chr((ord(ch) + 64) % 128))
        elif has_glyph is not None and not has_glyph(ch):
            out.append(f"U+{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out) or "\u2205"  # the empty symbol: the empty-set sign


def render_glyphs(symbols, size: int = 32) -> np.ndarray:
    """``(V, size, size)`` float bitmaps in [0, 1] of each symbol's text, centred, the font shrunk until the text
    fits."""
    from matplotlib import ft2font

    font = _font()
    flags = ft2font.LoadFlags.NO_HINTING if hasattr(ft2font, "LoadFlags") else ft2font.LOAD_NO_HINTING
    images = np.zeros((len(symbols), size, size))
    for i, symbol in enumerate(symbols):
        text = glyph_text(symbol, lambda ch: font.get_char_index(ord(ch)) != 0)
        for points in range(size, 2, -1):
            font.clear()
            font.set_size(points, 72)
            font.set_text(text, 0.0, flags=flags)
            font.draw_glyphs_to_bitmap(antialiased=True)
            img = np.asarray(font.get_image(), dtype=np.float64) / 255.0
            h, w = img.shape
            if h <= size and w <= size:
                top, left = (size - h) // 2, (size - w) // 2
                images[i, top : top + h, left : left + w] = img
                break
    return images


def glyph_embeddings(symbols, width: int, size: int = 32) -> torch.Tensor:
    """``(V, width)``: the binarised glyphs, PCA-reduced to at most ``width`` components, rows at unit length."""
    bits = (render_glyphs(symbols, size) >= 0.5).reshape(len(symbols), -1).astype(np.float64)
    seen: dict[bytes, int] = {}
    for i, row in enumerate(bits):
        key = row.tobytes()
        if key in seen:
            a, b = symbols[seen[key]], symbols[i]
            raise ConfigError(
                f"model.embedding: frozen_glyph draws tokens {a!r} and {b!r} alike, so they would share one "
                "embedding; use frozen_random or trainable for this task"
            )
        seen[key] = i
    centred = bits - bits.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(width, int((s > s[0] * 1e-9).sum()) if len(s) and s[0] > 0 else 0)  # the components with any variance
    table = np.zeros((len(symbols), width))
    table[:, :k] = u[:, :k] * s[:k]  # the coordinates on the leading principal components
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    return torch.from_numpy(table / np.where(norms > 0, norms, 1.0)).float()


def random_orthogonal_embeddings(v: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(v, width)``: orthonormal rows when ``v <= width``; else orthonormal columns with rows at unit length."""
    g = torch.randn(max(v, width), min(v, width), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r))  # the Haar-distributed orthogonal factor
    table = q if v >= width else q.T  # (v, width)
    return (table / table.norm(dim=1, keepdim=True)).float()


def freeze_embedding(read_in: nn.Module, kind: str, symbols) -> None:
    """Set a language model's embedding table ``read_in`` (``nn.Embedding``) to the frozen table ``kind`` of the
    vocabulary ``symbols``, never to be trained."""
    if kind == "trainable":
        return
    if not isinstance(read_in, nn.Embedding):
        raise ConfigError(f"model.embedding: {kind} needs a token embedding table, and this network has none")
    v, width = read_in.weight.shape
    table = glyph_embeddings(list(symbols), width) if kind == "frozen_glyph" else random_orthogonal_embeddings(v, width)
    with torch.no_grad():
        read_in.weight.copy_(table)
    read_in.weight.requires_grad_(False)
