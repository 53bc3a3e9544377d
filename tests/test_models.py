"""Models: pinned hook names, hooks removed, causality, encoders, fused == explicit attention."""

import pytest
import torch

from iclab.config import load_config
from iclab.errors import UserError
from iclab.models import ENCODERS, MODELS, build_model, capture, hook_points
from iclab.tasks import make_task

TRANSFORMER_HOOKS_2_LAYERS = [
    "hook_embed", "hook_pos_embed",
    *[f"blocks.{i}.{name}" for i in range(2) for name in (
        "hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern",
        "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")],
    "hook_final",
]

LSA_HOOKS_2_LAYERS = [f"blocks.{i}.{name}" for i in range(2)
                      for name in ("hook_resid_pre", "attn.hook_scores", "hook_attn_out", "hook_resid_post")]

COMBOS = [(m, e) for m in sorted(MODELS) for e in MODELS[m].encoders]
SIZE = {"transformer": ["model.n_embd=32", "model.n_head=2"], "linear_self_attention": []}


def _setup(model="transformer", encoder="interleaved", n_layer=2, seed=0):
    cfg = load_config(None, [f"model.name={model}", f"model.encoder={encoder}", f"model.n_layer={n_layer}",
                             *SIZE[model], "task.n_dims=3", "task.n_points=8"])
    torch.manual_seed(seed)
    return cfg, build_model(cfg.model, cfg.task.n_dims), make_task(cfg.task).eval_prompts(5, seed=0)


def test_transformer_hook_names_are_pinned():
    _, model, _ = _setup()
    assert list(hook_points(model)) == TRANSFORMER_HOOKS_2_LAYERS  # names, in forward order


def test_lsa_hook_names_are_pinned():
    _, model, _ = _setup("linear_self_attention", "stacked")
    assert list(hook_points(model)) == LSA_HOOKS_2_LAYERS


def test_every_model_has_pinned_hooks():
    assert set(MODELS) == {"transformer", "linear_self_attention"}


@pytest.mark.parametrize("model_name, encoder", COMBOS)
def test_capture_records_shapes_and_removes_hooks(model_name, encoder):
    cfg, model, prompts = _setup(model_name, encoder)
    tokens, _ = ENCODERS[encoder].encode(prompts.xs, prompts.ys)
    b, t = tokens.shape[:2]
    with capture(model) as cache:
        model.predict(prompts)
    assert set(cache) == set(hook_points(model))
    assert cache["blocks.0.hook_resid_post"].shape[:2] == (b, t)
    if model_name == "transformer":
        assert cache["blocks.1.attn.hook_pattern"].shape == (b, 2, t, t)
        torch.testing.assert_close(cache["blocks.1.attn.hook_pattern"].sum(-1), torch.ones(b, 2, t))
    assert all(not hp._forward_hooks for hp in hook_points(model).values())


def test_capture_removes_hooks_on_error():
    _, model, prompts = _setup()
    with pytest.raises(RuntimeError):
        with capture(model, ["hook_final"]):
            raise RuntimeError("boom")
    assert not hook_points(model)["hook_final"]._forward_hooks


def test_capture_rejects_unknown_hook_and_lists_valid_ones():
    _, model, _ = _setup()
    with pytest.raises(UserError, match="valid hooks: hook_embed"):
        with capture(model, ["blocks.9.nope"]):
            pass


@pytest.mark.parametrize("model_name, encoder", COMBOS)
def test_hooked_attention_equals_fused_kernel(model_name, encoder):
    _, model, prompts = _setup(model_name, encoder)
    plain = model.predict(prompts)
    with capture(model):
        hooked = model.predict(prompts)
    torch.testing.assert_close(hooked, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_name, encoder", COMBOS)
def test_prediction_uses_only_the_prefix(model_name, encoder):
    _, model, prompts = _setup(model_name, encoder)
    base = model.predict(prompts)
    for i in (0, 3, 6):
        xs, ys = prompts.xs.clone(), prompts.ys.clone()
        ys[:, i:] += 5.0
        xs[:, i + 1 :] *= -2.0
        out = model(xs, ys).detach()
        torch.testing.assert_close(out[:, : i + 1], base[:, : i + 1], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out[:, i + 1 :], base[:, i + 1 :])


def test_stacked_mask():
    xs, ys = torch.randn(1, 4, 2), torch.randn(1, 4)
    tokens, layout = ENCODERS["stacked"].encode(xs, ys)
    assert tokens.shape == (1, 7, 4)
    m = layout.attn_mask.int().tolist()
    # rows: context e0 e1 e2, then queries q0 q1 q2 q3
    assert m == [
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0],
        [1, 0, 0, 0, 1, 0, 0],
        [1, 1, 0, 0, 0, 1, 0],
        [1, 1, 1, 0, 0, 0, 1],
    ]
    assert layout.positions.tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert torch.equal(tokens[0, 4, :2], xs[0, 1]) and tokens[0, 4, 2] == 0 and tokens[0, 4, 3] == 1


def test_interleaved_tokens():
    xs, ys = torch.randn(1, 3, 2), torch.randn(1, 3)
    tokens, layout = ENCODERS["interleaved"].encode(xs, ys)
    assert tokens.shape == (1, 5, 3)
    assert torch.equal(tokens[0, 2, :2], xs[0, 1]) and tokens[0, 2, 2] == 0
    assert torch.equal(tokens[0, 3], torch.tensor([0.0, 0.0, ys[0, 1].item()]))
    assert layout.readout.tolist() == [0, 2, 4]


def test_prompt_longer_than_positions_is_a_clear_error():
    _, model, _ = _setup()
    longer = make_task(load_config(None, ["task.n_dims=3", "task.n_points=20"]).task).eval_prompts(2, seed=0)
    with pytest.raises(UserError, match="need 39 positions with the interleaved encoder, but model.n_positions is 15"):
        model.predict(longer)
