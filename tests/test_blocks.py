"""Building blocks (issue 27, section 1): rotary positions against an independent implementation, RMSNorm and
SwiGLU against their closed forms, Llama blocks as a config of the transformer, and hybrid networks from a list of
blocks, each checked against the family it borrows from (same weights, same outputs)."""

import math

import numpy as np
import pytest
import torch

from iclab.config import load_config
from iclab.models import build_model, hook_points
from iclab.models.encoders import Layout
from iclab.models.parts import SwiGLU, norm
from iclab.models.transformer import Attention, TransformerConfig, rotary
from iclab.tasks import make_task

LLAMA = ["model.positional=rope", "model.norm=rmsnorm", "model.mlp=swiglu", "model.bias=false"]
ALL_KINDS = "model.blocks=[attention(rope=true), mlp, 'memory(rule=gated_delta)', mamba, attention, mlp]"


def _config(*overrides, dims=3, points=8):
    return load_config(None, [f"task.n_dims={dims}", f"task.n_points={points}", *overrides])


def assert_causal(model, prompts) -> None:
    """Changing the labels from example i on leaves every prediction up to i as it was, and moves a later one."""
    base = model.predict(prompts)
    for i in (0, 3, 6):
        ys = prompts.ys.clone()
        ys[:, i:] += 5.0
        out = model(prompts.xs, ys).detach()
        torch.testing.assert_close(out[:, : i + 1], base[:, : i + 1], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out[:, i + 1 :], base[:, i + 1 :])


def test_rotary_equals_the_complex_rotation():
    """Independent statement (RoFormer's eq. 34 in complex form): channel pair (i, i + Dh/2) is the complex number
    x_i + j x_{i+Dh/2}, multiplied by exp(j * position * base^(-2i/Dh)); computed in numpy complex128."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=torch.float64)
    positions = torch.tensor([0, 1, 2, 5, 7, 11, 30, 31, 100])
    got = rotary(x, positions).numpy()
    half = 4
    z = x[..., :half].numpy() + 1j * x[..., half:].numpy()
    theta = 10000.0 ** (-np.arange(half) / half)
    rotated = z * np.exp(1j * positions.numpy()[:, None] * theta[None, :])
    expected = np.concatenate([rotated.real, rotated.imag], -1)
    assert np.abs(got - expected).max() < 1e-6  # the angles are formed in float32, as in the model


def test_rope_attention_is_invariant_to_a_shift_of_every_position():
    """Scores depend on i - j only: the same tokens at positions p and p + 37 give the same attention output."""
    torch.manual_seed(0)
    c = TransformerConfig(n_embd=16, n_head=2, positional="rope")
    attn = Attention(c).double()
    x = torch.randn(3, 10, 16, dtype=torch.float64)
    base = torch.arange(10)
    out = attn(x, Layout(positions=base, readout=base, attn_mask=None))
    shifted = attn(x, Layout(positions=base + 37, readout=base, attn_mask=None))
    torch.testing.assert_close(out, shifted, rtol=1e-6, atol=1e-6)  # angles are formed in float32
    learned = Attention(TransformerConfig(n_embd=16, n_head=2)).double()  # no rope: position plays no part here
    lay = Layout(base, base, None)
    assert not torch.allclose(attn(x, lay), learned(x, lay))


def test_rmsnorm_and_swiglu_are_their_closed_forms():
    torch.manual_seed(0)
    x = torch.randn(4, 5, 12, dtype=torch.float64)
    rms = norm("rmsnorm", 12).double()
    with torch.no_grad():
        rms.weight.copy_(torch.rand(12))
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * rms.weight
    torch.testing.assert_close(rms(x), expected, rtol=1e-12, atol=1e-12)
    assert sum(p.numel() for p in rms.parameters()) == 12  # a gain, no bias

    mlp = SwiGLU(12, 20).double()
    a, u = x @ mlp.gate.weight.T + mlp.gate.bias, x @ mlp.fc.weight.T + mlp.fc.bias
    expected = (a / (1 + torch.exp(-a)) * u) @ mlp.proj.weight.T + mlp.proj.bias
    torch.testing.assert_close(mlp(x), expected, rtol=1e-12, atol=1e-12)


def test_a_llama_block_is_a_config_of_the_transformer():
    cfg = _config(*LLAMA, "model.n_layer=2", "model.n_embd=16", "model.n_head=2")
    model = build_model(cfg.model, 3)
    net = model.backbone
    block = net.blocks[0]
    assert type(block.ln1).__name__ == "RMSNorm" and type(block.mlp).__name__ == "SwiGLU"
    assert net.pos_embed is None and block.attn.rope
    biases = [n for n, _ in net.blocks.named_parameters() if n.endswith("bias")]
    assert biases == []  # Llama's linear maps have none
    # per block: q, k, v, out (4 D^2) and SwiGLU's three D x 4D matrices, two RMSNorm gains
    assert sum(p.numel() for p in block.parameters()) == 4 * 16**2 + 3 * 16 * 64 + 2 * 16
    names = list(hook_points(model))
    plain = list(hook_points(build_model(_config("model.n_layer=2", "model.n_embd=16", "model.n_head=2").model, 3)))
    assert names == [n for n in plain if n != "hook_pos_embed"]
    assert cfg.model.label() == "Transformer 2x16 (interleaved, rope, RMSNorm, SwiGLU, no bias)"


def test_llama_transformer_is_causal():
    cfg = _config(*LLAMA, "model.n_layer=2", "model.n_embd=16", "model.n_head=2")
    torch.manual_seed(0)
    model = build_model(cfg.model, 3)
    assert_causal(model, make_task(cfg.task).eval_prompts(3, seed=0))


@pytest.mark.parametrize(
    "family, family_overrides, blocks, rename",
    [
        (
            "transformer",
            [],
            "[attention, mlp]",
            lambda k: (
                k.replace(".ln1.", ".0.ln.")
                .replace(".attn.", ".0.attn.")
                .replace(".ln2.", ".1.ln.")
                .replace(".mlp.", ".1.mlp.")
            ),
        ),
        (
            "transformer",
            LLAMA,
            "[attention(rope=true), mlp]",
            lambda k: (
                k.replace(".ln1.", ".0.ln.")
                .replace(".attn.", ".0.attn.")
                .replace(".ln2.", ".1.ln.")
                .replace(".mlp.", ".1.mlp.")
            ),
        ),
        (
            "memory",
            ["model.rule=gated_delta"],
            "['memory(rule=gated_delta)', mlp]",
            lambda k: (
                k.replace(".ln1.", ".0.ln.")
                .replace(".mem.", ".0.mem.")
                .replace(".ln2.", ".1.ln.")
                .replace(".mlp.", ".1.mlp.")
            ),
        ),
        (
            "mamba",
            ["model.d_state=4"],
            "[mamba(d_state=4)]",
            lambda k: k.replace(".ln.", ".0.ln.").replace(".ssm.", ".0.ssm."),
        ),
    ],
    ids=["gpt2", "llama", "memory", "mamba"],
)
def test_a_hybrid_of_one_family_s_blocks_is_that_family(family, family_overrides, blocks, rename):
    """The hybrid of [attention, mlp] is the GPT-2 transformer, of [memory, mlp] the memory network, of [mamba]
    Mamba: with the family's weights copied in, the same predictions."""
    size = ["model.n_layer=2", "model.n_embd=16", "model.n_head=2"]
    cfg = _config(f"model.name={family}", *size[: 2 if family == "mamba" else 3], *family_overrides)
    torch.manual_seed(0)
    ref = build_model(cfg.model, 3)
    extra = ["model.norm=rmsnorm", "model.mlp=swiglu", "model.bias=false"] if family_overrides == LLAMA else []
    positional = "none" if family == "mamba" or family_overrides == LLAMA else "learned"
    hcfg = _config("model.name=hybrid", f"model.blocks={blocks}", *size, f"model.positional={positional}", *extra)
    hybrid = build_model(hcfg.model, 3)
    hybrid.load_state_dict({rename(k): v for k, v in ref.state_dict().items()}, strict=True)
    prompts = make_task(cfg.task).eval_prompts(4, seed=1)
    torch.testing.assert_close(hybrid.predict(prompts), ref.predict(prompts), rtol=1e-6, atol=1e-6)


def test_a_hybrid_of_every_block_kind_is_causal_and_names_its_hooks():
    cfg = _config("model.name=hybrid", ALL_KINDS, "model.n_layer=2", "model.n_embd=16", "model.n_head=2")
    torch.manual_seed(0)
    model = build_model(cfg.model, 3)
    names = list(hook_points(model))
    for layer in (0, 1):
        assert f"blocks.{layer}.hook_resid_pre" in names and f"blocks.{layer}.hook_resid_post" in names
        assert all(f"blocks.{layer}.{j}.hook_out" in names for j in range(6))
    assert "blocks.1.0.attn.hook_pattern" in names and "blocks.0.2.mem.hook_k" in names
    assert "blocks.1.3.ssm.hook_state" in names
    assert_causal(model, make_task(cfg.task).eval_prompts(3, seed=0))
    assert cfg.model.label() == ("Hybrid 2x[rope attention, mlp, gated_delta memory, mamba, attention, mlp] 16")


def test_a_hybrid_run_resumes_bitwise(tmp_path):
    from iclab.training.checkpoint import latest_checkpoint
    from iclab.training.loop import train

    cfg = _config(
        "model.name=hybrid",
        ALL_KINDS,
        "model.n_embd=16",
        "model.n_head=2",
        "train.steps=8",
        "train.batch_size=8",
        "train.checkpoint_every=2",
        "train.eval_every=0",
        "train.device=cpu",
        "train.threads=1",
        "eval.n_prompts=16",
        points=6,
    )
    train(cfg, tmp_path / "straight", progress_bar=False)
    assert train(cfg, tmp_path / "split", stop_after=4, progress_bar=False).status == "interrupted"
    train(cfg, tmp_path / "split", resume=True, progress_bar=False)
    a, b = (latest_checkpoint(tmp_path / r).model for r in ("straight", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hybrid_parameter_bound_is_below_the_count():
    cfg = _config("model.name=hybrid", ALL_KINDS, "model.n_layer=3", "model.n_embd=16", "model.n_head=2")
    count = sum(p.numel() for p in build_model(cfg.model, 3).backbone.blocks.parameters())
    assert cfg.model.parameters_lower_bound() <= count
    assert math.isfinite(cfg.model.activations_lower_bound())


# ---------------------------------------------------------------- MemoryFormer's hashed layers (section 2)


def _codes(tau: int) -> torch.Tensor:
    """Every code of tau bits as +-1 vectors, row i the binary number i (most significant bit first)."""
    bits = (torch.arange(2**tau).unsqueeze(-1) >> torch.arange(tau - 1, -1, -1)) & 1
    return (2 * bits - 1).double()


@pytest.mark.parametrize("tau, temperature", [(1, 1.0), (3, 0.5), (4, 1.0), (6, 2.0)])
def test_hash_score_is_the_softmax_over_every_code(tau, temperature):
    """Brute force: the softmax over all 2^tau codes of <c, z> / t; its argmax is the hashed code and the score is
    that code's probability (the closed form factorises the sum over codes)."""
    from iclab.models.hashed import code_scores, hash_codes

    torch.manual_seed(tau)
    z = torch.randn(50, 3, tau, dtype=torch.float64)
    logits = torch.einsum("nkj,cj->nkc", z, _codes(tau)) / temperature
    probs = logits.softmax(-1)
    codes = hash_codes(z)
    assert torch.equal(codes, logits.argmax(-1))
    expected = probs.gather(-1, codes.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(code_scores(z, temperature), expected, rtol=1e-12, atol=1e-12)
    scaled = code_scores(z, temperature, "scaled")
    torch.testing.assert_close(scaled, expected * z.abs().sum(-1), rtol=1e-12, atol=1e-12)


def test_hashed_lookup_is_a_one_hot_matrix_product_and_passes_gradcheck():
    from iclab.models.hashed import HashedLinear

    torch.manual_seed(0)
    layer = HashedLinear(12, 5, tau=4, temperature=0.7).double()
    x = torch.randn(7, 12, dtype=torch.float64)
    rows, scores = layer.lookup(x)
    one_hot = torch.zeros(7, layer.tables.shape[0], dtype=torch.float64)
    one_hot.scatter_add_(1, rows, scores)  # each of the 3 tables contributes one row, weighted
    assert rows.shape == (7, 3) and all(((rows[:, k] >= 16 * k) & (rows[:, k] < 16 * (k + 1))).all() for k in range(3))
    torch.testing.assert_close(layer(x), one_hot @ layer.tables + layer.bias, rtol=1e-12, atol=1e-12)
    x = x.sign() * (x.abs() + 0.1)  # away from the sign boundary, where the code is constant
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, t: HashedLinear.forward(_with_tables(layer, t), a), (x, layer.tables))


def _with_tables(layer, tables):
    """``layer`` reading ``tables`` (for gradcheck's perturbed copies)."""
    import copy

    clone = copy.copy(layer)
    clone._parameters = dict(layer._parameters, tables=tables)
    return clone


def test_a_hashed_transformer_is_causal_trains_and_resumes(tmp_path):
    from iclab.training.checkpoint import latest_checkpoint
    from iclab.training.loop import train

    sets = ["model.linear=hashed", "model.hash_bits=4", "model.hashed=[qkv, proj, mlp]", "model.n_embd=16"]
    cfg = _config(*sets, "model.n_head=2", "model.n_layer=2")
    torch.manual_seed(0)
    model = build_model(cfg.model, 3)
    block = model.backbone.blocks[0]
    assert all(
        type(m).__name__ == "HashedLinear" for m in (block.attn.qkv, block.attn.proj, block.mlp.fc, block.mlp.proj)
    )
    assert_causal(model, make_task(cfg.task).eval_prompts(3, seed=0))
    run = [*sets, "model.n_head=2", "train.steps=6", "train.batch_size=8", "train.checkpoint_every=2"]
    run += ["train.eval_every=0", "train.device=cpu", "train.threads=1", "eval.n_prompts=16"]
    cfg = _config(*run, points=6)
    train(cfg, tmp_path / "straight", progress_bar=False)
    assert train(cfg, tmp_path / "split", stop_after=2, progress_bar=False).status == "interrupted"
    early = latest_checkpoint(tmp_path / "split").model
    train(cfg, tmp_path / "split", resume=True, progress_bar=False)
    a, b = (latest_checkpoint(tmp_path / r).model for r in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    key = next(k for k in a if k.endswith("attn.qkv.tables"))
    assert not torch.equal(a[key], early[key])  # the tables trained


HASHED = ["model.linear=hashed", "model.hash_bits=4", "model.hashed=[qkv, proj, mlp]"]


@pytest.mark.parametrize(
    "variant", [LLAMA, HASHED, ["model.name=hybrid", ALL_KINDS]], ids=["llama", "hashed", "hybrid"]
)
def test_memory_counts_of_each_block_variant_extrapolate_exactly(variant):
    """The step's memory is counted from networks of one and two layers and extrapolated: exact for every variant."""
    from dataclasses import replace

    from iclab.models.size import count_layers, count_on_meta

    cfg = _config(*variant, "model.n_layer=5", "model.n_embd=16", "model.n_head=2")

    def count(model_config):
        with torch.device("meta"):
            return count_on_meta(build_model(model_config, 3), torch.empty(4, 8, 3), torch.empty(4, 8))

    assert count_layers(count, cfg.model) == count(replace(cfg.model, n_layer=5))


def test_a_llama_run_resumes_bitwise(tmp_path):
    from iclab.training.checkpoint import latest_checkpoint
    from iclab.training.loop import train

    run = [*LLAMA, "model.n_embd=16", "model.n_head=2", "train.steps=6", "train.batch_size=8"]
    run += [
        "train.checkpoint_every=2",
        "train.eval_every=0",
        "train.device=cpu",
        "train.threads=1",
        "eval.n_prompts=16",
    ]
    cfg = _config(*run, points=6)
    train(cfg, tmp_path / "straight", progress_bar=False)
    assert train(cfg, tmp_path / "split", stop_after=2, progress_bar=False).status == "interrupted"
    train(cfg, tmp_path / "split", resume=True, progress_bar=False)
    a, b = (latest_checkpoint(tmp_path / r).model for r in ("straight", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
