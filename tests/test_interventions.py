"""Interventions by hook name (``run_with_hooks``): ablating one head's values equals removing that head from a
forward pass computed by hand; patching any hook of any family with its own activation changes nothing, with
another run's activation carries that run's output; zero and mean ablation; hooks removed afterwards."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import real_families, tiny_model
from iclab.config import load_config
from iclab.errors import UserError
from iclab.models import (
    MODELS,
    build_model,
    capture,
    hook_points,
    mean_ablation,
    patch_with,
    run_with_hooks,
    zero_ablation,
)
from iclab.tasks import make_task


def _setup(model="transformer", encoder="stacked", n_layer=2, seed=0):
    cfg = load_config(
        None,
        [
            *tiny_model(model),
            f"model.encoder={encoder}",
            f"model.n_layer={n_layer}",
            "task.n_dims=3",
            "task.n_points=8",
        ],
    )
    torch.manual_seed(seed)
    model = build_model(cfg.model, cfg.task.n_dims).eval()
    return model, make_task(cfg.task).eval_prompts(6, seed=0)


def _by_hand(model, prompts, layer: int, head: int) -> torch.Tensor:
    """The transformer's forward pass written out with torch primitives, head ``head`` of layer ``layer`` left out."""
    net = model.backbone
    tokens, layout = model.encoder.encode(prompts.xs, prompts.ys)
    x = net.read_in(tokens) + net.pos_embed(layout.positions)
    for i, block in enumerate(net.blocks):
        attn = block.attn
        h = F.layer_norm(x, x.shape[-1:], block.ln1.weight, block.ln1.bias)
        b, t, d = h.shape
        q, k, v = (h @ attn.qkv.weight.T + attn.qkv.bias).view(b, t, 3, attn.n_head, d // attn.n_head).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, Dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        weights = scores.masked_fill(~layout.attn_mask, float("-inf")).softmax(-1)
        y = weights @ v  # (B, H, T, Dh)
        if i == layer:
            y[:, head] = 0  # the head removed: it adds nothing to the residual stream
        x = x + y.transpose(1, 2).reshape(b, t, d) @ attn.proj.weight.T + attn.proj.bias
        h = F.layer_norm(x, x.shape[-1:], block.ln2.weight, block.ln2.bias)
        x = x + block.mlp.proj(F.gelu(block.mlp.fc(h), approximate="tanh"))
    x = F.layer_norm(x, x.shape[-1:], net.ln_f.weight, net.ln_f.bias)
    return (x @ net.read_out.weight.T + net.read_out.bias).squeeze(-1)[:, layout.readout]


@pytest.mark.parametrize("layer,head", [(0, 0), (0, 1), (1, 1)])
def test_ablating_a_heads_values_removes_the_head(layer, head):
    model, prompts = _setup()
    ablated = run_with_hooks(model, prompts, {f"blocks.{layer}.attn.hook_v": zero_ablation(head=head)})
    clean = run_with_hooks(model, prompts, {})
    with torch.no_grad():
        assert torch.allclose(_by_hand(model, prompts, -1, 0), clean, atol=1e-5)  # the hand-written pass is right
        expected = _by_hand(model, prompts, layer, head)
    assert torch.allclose(ablated, expected, atol=1e-5)
    assert (ablated - clean).abs().max() > 1e-4  # and the head mattered


@pytest.mark.parametrize("family", real_families())
def test_patching_every_hook_of_every_family(family):
    model, prompts = _setup(family, MODELS[family].encoders[-1], n_layer=1)
    other = make_task(load_config(None, ["task.n_dims=3", "task.n_points=8"]).task).eval_prompts(6, seed=7)
    names = list(hook_points(model))
    with capture(model, names) as cache:
        clean = model.forward_prompts(prompts).detach()
    with capture(model, names) as corrupted:
        corrupted_out = model.forward_prompts(other).detach()
    for name in names:  # its own activation back: nothing changes
        out = run_with_hooks(model, prompts, {name: patch_with(cache[name])})
        assert torch.allclose(out, clean, atol=1e-6), name
    last = names[-1]  # the activation nearest the read-out: another run's carries that run's output
    out = run_with_hooks(model, prompts, {last: patch_with(corrupted[last])})
    assert torch.allclose(out, corrupted_out, atol=1e-6), last
    zeroed = run_with_hooks(model, prompts, {names[0]: zero_ablation()})
    assert not torch.allclose(zeroed, clean)
    assert not any(p._forward_hooks for p in hook_points(model).values())  # hooks removed


def test_mean_ablation_and_token_models(quick_lm):
    from iclab.tasks import TASKS

    task = TASKS["mqar"](TASKS["mqar"].Config(n_train=None))
    model = quick_lm("transformer", task).eval()
    prompts = task.eval_prompts(4, seed=0)
    with capture(model, ["blocks.0.hook_attn_out"]) as cache:
        logits = model.forward_prompts(prompts)
    mean = cache["blocks.0.hook_attn_out"].mean(0, keepdim=True)
    out = run_with_hooks(model, prompts, {"blocks.0.hook_attn_out": mean_ablation(mean)})
    assert out.shape == logits.shape == (4, prompts.length, task.vocab_size)
    with capture(model, ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid"]) as seen:  # downstream of the patch
        run_with_hooks(model, prompts, {"blocks.0.hook_attn_out": mean_ablation(mean)})
    assert torch.allclose(seen["blocks.0.hook_resid_mid"], seen["blocks.0.hook_resid_pre"] + mean, atol=1e-6)
    one_head = mean_ablation(cache["blocks.0.hook_attn_out"][:1], head=2, dim=2)  # a slice of the width
    x = cache["blocks.0.hook_attn_out"]
    y = one_head(x, "blocks.0.hook_attn_out")
    assert torch.equal(y[:, :, 2], x[:1, :, 2].expand_as(y[:, :, 2])) and torch.equal(y[:, :, 3:], x[:, :, 3:])


def test_an_unknown_hook_or_a_wrong_shape_is_one_line():
    model, prompts = _setup()
    with pytest.raises(UserError, match="does not exist; valid hooks: hook_embed"):
        run_with_hooks(model, prompts, {"blocks.9.attn.hook_v": zero_ablation()})
    with pytest.raises(UserError, match="shape"):
        run_with_hooks(model, prompts, {"blocks.0.hook_resid_pre": patch_with(torch.zeros(2, 2))})
    assert not any(p._forward_hooks for p in hook_points(model).values())
