"""Frozen input embeddings (issue 27, section 3): the glyph table against scikit-learn's PCA of the same bitmaps,
the random table orthonormal, both frozen through training and resume, bad settings refused."""

import numpy as np
import pytest
import torch

from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.models.embeddings import (
    glyph_embeddings,
    glyph_text,
    random_orthogonal_embeddings,
    render_glyphs,
)

TOKEN_RUN = [
    "task.name=regbench",
    "task.max_length=40",
    "task.n_train=20",
    "model.n_layer=1",
    "model.n_embd=16",
    "model.n_head=2",
    "model.n_positions=null",
    "train.steps=6",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.eval_every=0",
    "train.checkpoint_every=2",
    "train.device=cpu",
    "train.threads=1",
    "eval.n_prompts=8",
    "eval.learners=[]",
]


def test_glyphs_are_drawn_and_whitespace_gets_a_visible_stand_in():
    images = render_glyphs(["a", "b", " ", "\n", "k12"], size=32)
    assert images.shape == (5, 32, 32) and images.min() >= 0 and images.max() <= 1
    ink = (images >= 0.5).sum((1, 2))
    assert (ink > 10).all()  # every token leaves ink, whitespace included
    assert glyph_text(" ") == "\u2423" and glyph_text("\n") == "\u21b5" and glyph_text("\x01") == "^A"
    assert not np.array_equal(images[2], images[3])


def test_glyph_table_is_the_pca_of_the_binarised_glyphs():
    """Independent: scikit-learn's PCA of the same binarised bitmaps, rows scaled to unit length; equal up to each
    component's sign."""
    from sklearn.decomposition import PCA

    symbols = list("0123456789+=abcxyz")
    bits = (render_glyphs(symbols) >= 0.5).reshape(len(symbols), -1).astype(float)
    width = 8
    coords = PCA(n_components=width, svd_solver="full").fit_transform(bits)
    expected = coords / np.linalg.norm(coords, axis=1, keepdims=True)
    got = glyph_embeddings(symbols, width).double().numpy()
    signs = np.sign((got * expected).sum(0))
    assert np.abs(got - expected * signs).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    # fewer tokens than the width: the table spans V - 1 components, the rest are zero
    small = glyph_embeddings(list("abcd"), 16)
    assert small.shape == (4, 16) and torch.all(small[:, 3:] == 0)


def test_glyphs_that_look_alike_are_close():
    """The point of a glyph table: what looks alike starts alike ('O' and '0' closer than 'O' and '1')."""
    table = glyph_embeddings(list("O01lIx+"), 6)
    cos = table @ table.T
    assert cos[0, 1] > cos[0, 2] and cos[0, 1] > cos[0, 5]


def test_random_orthogonal_table():
    g = torch.Generator().manual_seed(0)
    t = random_orthogonal_embeddings(20, 64, g)
    torch.testing.assert_close(t @ t.T, torch.eye(20), atol=1e-6, rtol=0)
    wide = random_orthogonal_embeddings(100, 16, g)
    torch.testing.assert_close(wide.norm(dim=1), torch.ones(100), atol=1e-6, rtol=0)
    sv = torch.linalg.svdvals(wide) / (100 / 16) ** 0.5  # columns orthonormal before the rows were scaled
    assert sv.min() > 0.8 and sv.max() < 1.25


@pytest.mark.parametrize("option", ["frozen_random", "frozen_glyph"])
def test_a_frozen_table_never_moves_and_resumes_bitwise(option, tmp_path):
    from iclab.kinds import build_for_task
    from iclab.tasks import make_task
    from iclab.training.checkpoint import latest_checkpoint
    from iclab.training.loop import train

    cfg = load_config(None, [*TOKEN_RUN, f"model.embedding={option}"])
    torch.manual_seed(0)
    fresh = build_for_task(cfg.model, make_task(cfg.task))
    table = fresh.backbone.read_in.weight.detach().clone()
    assert not fresh.backbone.read_in.weight.requires_grad
    train(cfg, tmp_path / "straight", progress_bar=False)
    trained = latest_checkpoint(tmp_path / "straight").model
    key = next(k for k in trained if k.endswith("read_in.weight"))
    if option == "frozen_glyph":  # deterministic: the same table in every run
        assert torch.equal(trained[key], table)
    blocks = [k for k in trained if ".blocks." in f".{k}" and k.endswith("weight")]
    assert blocks
    assert train(cfg, tmp_path / "split", stop_after=2, progress_bar=False).status == "interrupted"
    first = latest_checkpoint(tmp_path / "split").model
    assert torch.equal(first[key], trained[key])  # unchanged from step 2 to step 6
    train(cfg, tmp_path / "split", resume=True, progress_bar=False)
    resumed = latest_checkpoint(tmp_path / "split").model
    assert all(torch.equal(resumed[k], trained[k]) for k in trained)
    assert any(not torch.equal(first[k], resumed[k]) for k in blocks)  # the blocks did train


def test_frozen_glyph_refuses_tokens_drawn_alike():
    with pytest.raises(ConfigError, match="frozen_glyph draws tokens 'a' and 'a' alike"):
        glyph_embeddings(["a", "b", "a"], 8)
