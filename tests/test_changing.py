"""Changing a trained run: parameter-efficient fine-tuning (He et al. 2022), pruning masks and starting from another
run's weights. Every method's exactness property is checked against an independent computation."""

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from conftest import real_families, tiny_model
from iclab.cli import main
from iclab.config import PETL_METHODS, FinetuneConfig, load_config
from iclab.errors import ConfigError
from iclab.models import build_model
from iclab.models.petl import LoRALinear, apply_petl, merge_lora, petl_formula, trainable_parameters
from iclab.tasks import make_task
from iclab.training.loop import train

SMALL_RUN = [  # a small transformer run on linear regression (d = 3), a few seconds on one core
    "task.n_dims=3",
    "task.n_points=7",
    "model.n_layer=2",
    "model.n_embd=16",
    "model.n_head=2",
    "train.batch_size=16",
    "train.warmup_steps=2",
    "train.device=cpu",
    "train.eval_every=0",
    "eval.n_prompts=32",
]
EXACT = [m for m in PETL_METHODS if m != "prefix" and m != "mam"]  # start as the base network, bit for bit


def _network(family: str, seed: int = 0):
    cfg = load_config(None, ["task.n_dims=3", "task.n_points=7", "model.n_layer=2", *tiny_model(family)])
    torch.manual_seed(seed)
    model = build_model(cfg.model, 3)
    with torch.no_grad():  # away from the zero-bias initialisation, so a dropped term would show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return cfg, model.eval()


def _prompts(n: int = 8, points: int = 7, d: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, points, d, generator=g), torch.randn(n, points, generator=g)


def _applies(method: str, family: str) -> bool:
    if method in ("full", "readout"):
        return method == "full" or family != "linear_self_attention"  # LSA reads its prediction off the stream
    if method == "lora":
        return family in ("transformer", "memory", "hybrid")  # a fused qkv map (the default target)
    if method in ("adapter", "parallel_adapter"):
        return family in ("transformer", "memory")  # an MLP sub-layer (LSA's is off by default)
    return family == "transformer"  # prefix, mam: softmax attention


@pytest.mark.parametrize("family", real_families())
@pytest.mark.parametrize("method", PETL_METHODS)
def test_every_method_starts_as_the_base_network_or_is_refused(family, method):
    """Before its first step a fine-tuned network predicts exactly what the base predicts (LoRA's B and the adapters'
    up-projections start at zero); a method that does not apply to the family is refused in one line. The trainable
    parameters are exactly the method's, and their count is the formula's."""
    cfg, model = _network(family)
    xs, ys = _prompts()
    with torch.no_grad():
        before = model(xs, ys)
    changed = FinetuneConfig(method=method)
    if not _applies(method, family):
        with pytest.raises(ConfigError) as e:
            apply_petl(model, changed)
        assert "\n" not in str(e.value) and ("finetune.method" in str(e.value) or "finetune.targets" in str(e.value))
        return
    try:
        apply_petl(model, changed)
    except ConfigError as e:
        pytest.fail(f"{method} should apply to {family}: {e}")
    with torch.no_grad():
        after = model(xs, ys)
    if method in EXACT:
        assert torch.equal(before, after)
    count, formula = petl_formula(model, changed)
    assert count == trainable_parameters(model), formula
    if method == "full":
        assert count == sum(p.numel() for p in model.parameters())


def test_lora_merged_into_the_weights_equals_the_unmerged_network():
    _, model = _network("transformer")
    apply_petl(model, FinetuneConfig(method="lora", r=3, alpha=6.0, targets=["qkv", "mlp.fc", "attn.proj"]))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_b.normal_(0, 0.1)  # a trained update
    xs, ys = _prompts()
    with torch.no_grad():
        unmerged = model(xs, ys)
        merged = merge_lora(model)(xs, ys)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-6)


def test_lora_computes_w_x_plus_scaled_b_a_x():
    torch.manual_seed(0)
    base = torch.nn.Linear(5, 7)
    lora = LoRALinear(base, r=2, alpha=3.0)
    with torch.no_grad():
        lora.lora_b.normal_()
    x = torch.randn(4, 5)
    expected = x @ base.weight.T + base.bias + (3.0 / 2) * (x @ lora.lora_a.T) @ lora.lora_b.T
    torch.testing.assert_close(lora(x), expected)


def test_prefix_equals_he_et_al_gated_form():
    """Attention over [P_k; K], [P_v; V] is (1 - lambda) Attn(x) + lambda softmax(q P_k^T) P_v with lambda the prefix's
    share of the softmax mass (He et al. 2022, eq. 7), computed here by hand per head from q, k, v."""
    from iclab.models import capture

    _, model = _network("transformer")
    xs, ys = _prompts()
    with torch.no_grad(), capture(model, ["blocks.0.hook_resid_pre", "blocks.0.attn.hook_q"]) as cache:
        model(xs, ys)
    apply_petl(model, FinetuneConfig(method="prefix", prefix_length=3))
    attn = model.backbone.blocks[0].attn
    with torch.no_grad():
        attn.prefix_k.normal_(0, 1.0)
        attn.prefix_v.normal_(0, 1.0)
        x = model.backbone.blocks[0].ln1(cache["blocks.0.hook_resid_pre"])
        b, t, d = x.shape
        h = attn.n_head
        q, k, v = attn.qkv(x).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        scale = 1 / math.sqrt(d // h)
        s_tok = (q @ k.transpose(-1, -2) * scale).masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), -math.inf)
        s_pre = q @ attn.prefix_k.unsqueeze(0).transpose(-1, -2) * scale  # (B, H, T, l)
        mass_tok, mass_pre = s_tok.exp().sum(-1, keepdim=True), s_pre.exp().sum(-1, keepdim=True)
        lam = mass_pre / (mass_pre + mass_tok)
        gated = (1 - lam) * (s_tok.softmax(-1) @ v) + lam * (s_pre.softmax(-1) @ attn.prefix_v.unsqueeze(0))
        expected = attn.proj(gated.transpose(1, 2).reshape(b, t, d))
        from iclab.models.encoders import Layout

        layout = Layout(positions=torch.arange(t), readout=torch.arange(t), attn_mask=None)
        got = attn(x, layout)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A small finished transformer run on linear regression (d = 3)."""
    folder = tmp_path_factory.mktemp("change") / "base"
    cfg = load_config(None, [*SMALL_RUN, "train.steps=30", "train.checkpoint_every=15"])
    train(cfg, folder, progress_bar=False)
    return folder


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def _finetune_cfg(base: Path, method: str, *overrides: str):
    from iclab.change import finetune_config

    return finetune_config(
        base,
        method,
        [
            "task.name=sparse_linear_regression",
            "train.steps=12",
            "train.checkpoint_every=4",
            "train.lr=0.01",
            *overrides,
        ],
    )


@pytest.mark.parametrize("method", ["readout", "lora(r=2, targets=[qkv, mlp.fc])", "parallel_adapter", "mam"])
def test_fine_tuning_trains_only_the_method_and_resumes_bitwise(base_run, tmp_path, method):
    """The base's weights stay bit for bit what they were; the method's parameters move; the run records where it
    started (start.json, with the trainable count); stopping and resuming gives the uninterrupted run's weights."""
    from iclab.training.checkpoint import latest_checkpoint

    before = _tree_digest(base_run)
    cfg = _finetune_cfg(base_run, method)
    assert cfg.start.run == str(base_run) and cfg.task.name == "sparse_linear_regression"
    straight = train(cfg, tmp_path / "straight", progress_bar=False)
    assert straight.status == "finished"
    base_w = latest_checkpoint(base_run).model
    tuned = latest_checkpoint(tmp_path / "straight").model
    for name, value in base_w.items():
        if cfg.finetune.method != "readout" or "read_out" not in name:
            assert torch.equal(tuned[name], value), name
    added = [n for n in tuned if n not in base_w] if cfg.finetune.method != "readout" else ["backbone.read_out.weight"]
    assert added and any(not torch.equal(tuned[n], base_w.get(n, torch.zeros_like(tuned[n]))) for n in added)
    record = json.loads((tmp_path / "straight" / "start.json").read_text())
    assert record["run"] == str(base_run.resolve()) and record["step"] == 30
    assert record["finetune"]["trainable"] < record["finetune"]["total"]
    split = tmp_path / "split"
    assert train(cfg, split, stop_after=6, progress_bar=False).status == "interrupted"
    assert train(cfg, split, resume=True, progress_bar=False).step == 12
    resumed = latest_checkpoint(split).model
    assert all(torch.equal(resumed[n], tuned[n]) for n in tuned)
    assert _tree_digest(base_run) == before


def test_a_fine_tuned_run_evaluates_and_reports_like_any_other(base_run, tmp_path, capsys):
    out = tmp_path / "lora"
    code = main(
        [
            "finetune",
            str(base_run),
            "--method",
            "lora(r=2)",
            "--set",
            "task.noise_std=0.5",
            "--set",
            "train.steps=8",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    told = capsys.readouterr().err
    assert "2 maps * r (in + out) = 2*2*(16+48) = 256" in told and "256 of 7,153 parameters trained" in told
    curves = (out / "eval" / "curves.csv").read_text()
    assert "model" in curves and "least_squares" in curves
    page = (out / "report.html").read_text()
    assert "Started from" in page and "lora" in page and str(base_run.resolve()) in page
    assert main(["eval", str(out), "--prompts", "32"]) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "prefix", "--set", "model.n_embd=32"], "model.n_embd: 32 here but 16 in start.run"),
        (["--method", "full", "--set", "model.name=rnn"], "model.name: 'rnn' here but 'transformer' in start.run"),
        (["--method", "banana"], "--method: 'banana' is not a fine-tuning method"),
        (["--method", "lora(r=0)"], "finetune.r: must be positive"),
        (["--method", "lora(targets=[nope])"], "finetune.targets[0]: 'nope' names no linear map"),
        (["--method", "lora(rank=2)"], "finetune.rank: unknown field"),
        (["--method", "full", "--set", "task.n_dims=4"], "is (16, 4)"),
    ],
)
def test_bad_fine_tuning_is_one_line_and_leaves_the_base_alone(base_run, tmp_path, capsys, args, message):
    before = _tree_digest(base_run)
    code = main(["finetune", str(base_run), *args, "--set", "train.steps=2", "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert _tree_digest(base_run) == before
    assert not (tmp_path / "new").exists()


def test_fine_tuning_refuses_an_existing_out_and_an_unfinished_base(base_run, tmp_path, capsys, tiny_overrides):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    assert main(["finetune", str(base_run), "--out", str(tmp_path / "taken")]) == 2
    assert "exists" in capsys.readouterr().err and (tmp_path / "taken" / "x").read_text() == "keep"
    half = tmp_path / "half"
    train(load_config(None, tiny_overrides), half, stop_after=10, progress_bar=False)
    assert main(["finetune", str(half), "--set", "train.steps=2", "--out", str(tmp_path / "n")]) == 2
    assert "unfinished (10 of 20 steps)" in capsys.readouterr().err
    assert main(["finetune", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")]) == 2
    capsys.readouterr()


def test_the_prefix_start_is_the_base_attention_scaled_by_one_minus_lambda():
    """Why the prefix cannot start as the base (docs/changing.md): with P_v = 0 each attention output is the base's
    times 1 - lambda, lambda > 0 the prefix's share of the softmax mass."""
    _, model = _network("transformer")
    xs, ys = _prompts()
    apply_petl(model, FinetuneConfig(method="prefix", prefix_length=2))
    attn = model.backbone.blocks[0].attn
    x = torch.randn(2, 5, 16)
    from iclab.models.encoders import Layout

    layout = Layout(positions=torch.arange(5), readout=torch.arange(5), attn_mask=None)
    with torch.no_grad():
        with_prefix = attn(x, layout) - attn.proj.bias
        saved = attn.prefix_k, attn.prefix_v
        attn.prefix_k = attn.prefix_v = None
        plain = attn(x, layout) - attn.proj.bias
        attn.prefix_k, attn.prefix_v = saved
    ratio = (with_prefix.norm(dim=-1) / plain.norm(dim=-1)).flatten()
    assert bool((ratio < 1).all()) and bool((ratio > 0).all())


def test_config_refuses_changes_without_a_start():
    with pytest.raises(ConfigError, match="finetune: changes a trained network: set start.run"):
        load_config(None, ["finetune.method=lora"])
    with pytest.raises(ConfigError, match=r"finetune.method: must be one of full, readout"):
        load_config(None, ["start.run=x", "finetune.method=lorax"])


def test_pruning_masks_remove_units_exactly():
    """A zero in a head's mask equals zeroing that head's value rows (its output is then exactly zero); a zero in a
    neuron's mask equals zeroing the neuron's output column."""
    from iclab.models.pruning import add_unit_masks, prunable_units

    _, model = _network("transformer")
    xs, ys = _prompts()
    reference = _network("transformer")[1]
    add_unit_masks(model)
    units = prunable_units(model, tokens=7)
    assert sum(u.kind == "head" for u in units) == 4 and sum(u.kind == "neuron" for u in units) == 2 * 64
    blocks, ref_blocks = model.backbone.blocks, reference.backbone.blocks
    with torch.no_grad():
        blocks[1].attn.head_mask[0] = 0
        blocks[0].mlp.neuron_mask[5] = 0
        d = ref_blocks[1].attn.proj.in_features
        ref_blocks[1].attn.proj.weight[:, : d // 2] = 0  # head 0's columns of the output projection
        ref_blocks[0].mlp.proj.weight[:, 5] = 0
        torch.testing.assert_close(model(xs, ys), reference(xs, ys), rtol=1e-5, atol=1e-6)


def test_task_change_without_start_keeps_refitting_positions():
    """With start.run set, a --set task.* keeps the base's model sizes (its weights fix them)."""
    from iclab.config import release_fitted_positions, to_dict

    data = to_dict(load_config(None, ["model.n_positions=40"]))
    data["start"] = {"run": "x", "step": None}
    assert release_fitted_positions(data, ["task.n_points=5"])["model"]["n_positions"] == 40


# ---------------------------------------------------------------------------------------------- TokenFormer


def _np_gelu(a):
    from scipy.special import erf

    return 0.5 * a * (1 + erf(a / math.sqrt(2)))


@pytest.mark.parametrize("norm", ["gelu_l2", "softmax"])
def test_pattention_is_the_papers_formula(norm):
    """Against numpy: w = GELU(x K^T) / ||.||_2 * sqrt(n) (or softmax * n), output w V."""
    import numpy as np

    from iclab.models.pattention import Pattention

    torch.manual_seed(0)
    layer = Pattention(6, 5, tokens=9, norm=norm).double()
    with torch.no_grad():
        layer.param_keys.normal_()
        layer.param_values.normal_()
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    a = x.numpy() @ layer.param_keys.detach().numpy().T
    if norm == "gelu_l2":
        g = _np_gelu(a)
        w = g / np.linalg.norm(g, axis=-1, keepdims=True) * math.sqrt(9)
    else:
        e = np.exp(a - a.max(-1, keepdims=True))
        w = e / e.sum(-1, keepdims=True) * 9
    np.testing.assert_allclose(layer(x).detach().numpy(), w @ layer.param_values.detach().numpy(), rtol=1e-10)


def _pattention_run(folder: Path, *overrides: str) -> Path:
    cfg = load_config(
        None, [*SMALL_RUN, "model.linear=pattention", "model.param_tokens=8", "train.steps=20", *overrides]
    )
    train(cfg, folder, progress_bar=False)
    return folder


def test_a_pattention_transformer_is_causal(tmp_path):
    cfg = load_config(None, ["task.n_dims=3", "task.n_points=7", "model.linear=pattention", "model.param_tokens=8"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 3).eval()
    xs, ys = _prompts()
    later = ys.clone()
    later[:, 4:] += 1.0
    with torch.no_grad():
        a, b = model(xs, ys), model(xs, later)
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])


def test_growth_keeps_the_function_exactly_and_the_reference_scaling_would_not(tmp_path):
    """A grown network (N tokens with zero keys appended, normalised at the old count) predicts what the base
    predicts to 1e-6 before its first step; normalising at the new count (the reference code) scales every
    Pattention output by sqrt((n + N) / n)."""
    from iclab.change import grow_config
    from iclab.kinds import build_run_network
    from iclab.rundir import load_model
    from iclab.training.start import load_start

    base = _pattention_run(tmp_path / "base")
    cfg = grow_config(base, 24, ["train.steps=5"])
    assert (cfg.model.param_tokens, cfg.model.param_scale_tokens) == (32, 8)
    grown = build_run_network(cfg, make_task(cfg.task))
    record = load_start(cfg, grown)
    assert record["grow"] == {"from_tokens": 8, "to_tokens": 32}
    _, before, _ = load_model(base)
    xs, ys = _prompts()
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(xs, ys), before(xs, ys), rtol=0, atol=1e-6)
        layer = grown.backbone.blocks[0].mlp
        x = torch.randn(5, 16)
        exact = layer(x)
        layer.scale_tokens = 32  # the reference code's normalisation: the current count
        torch.testing.assert_close(layer(x), exact * math.sqrt(32 / 8))


def test_grown_tokens_train(tmp_path):
    """The appended tokens are not a saddle: their keys get a gradient on the first step (their values are the
    network's fresh initialisation), and after a few steps they have moved. With zero values too, both gradients
    would be exactly zero and the grown network would be the small one trained longer."""
    from iclab.change import grow_config
    from iclab.training.checkpoint import latest_checkpoint
    from iclab.training.start import load_start

    base = _pattention_run(tmp_path / "base")
    cfg = grow_config(base, 8, ["train.steps=3"])
    grown = build_model(cfg.model, 3)
    load_start(cfg, grown)
    layer = grown.backbone.blocks[0].mlp
    assert torch.equal(layer.param_keys[8:], torch.zeros(8, 16)) and bool(layer.param_values[8:].abs().sum() > 0)
    xs, ys = _prompts()
    grown.train()
    ((grown(xs, ys) - ys) ** 2).mean().backward()
    assert float(layer.param_keys.grad[8:].abs().sum()) > 0
    train(cfg, tmp_path / "grown", progress_bar=False)
    keys = latest_checkpoint(tmp_path / "grown").model["backbone.blocks.0.mlp.param_keys"]
    assert float(keys[8:].abs().sum()) > 0


def test_growing_trains_on_and_records_where_it_came_from(tmp_path, capsys):
    base = _pattention_run(tmp_path / "base")
    out = tmp_path / "grown"
    assert main(["grow", str(base), "--param-tokens", "8", "--set", "train.steps=6", "--out", str(out)]) == 0
    record = json.loads((out / "start.json").read_text())
    assert record["grow"] == {"from_tokens": 8, "to_tokens": 16}
    assert "8 -&gt; 16 parameter tokens per layer" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    "change, args, message",
    [
        ("dense", ["--param-tokens", "4"], "has no Pattention layers (model.linear: dense)"),
        ("softmax", ["--param-tokens", "4"], "growth keeps the function only under gelu_l2"),
        ("ok", ["--param-tokens", "0"], "--param-tokens: must be a positive number"),
        ("ok", ["--param-tokens", "4", "--set", "model.n_embd=32"], "model.n_embd: 32 here but 16"),
    ],
)
def test_bad_growth_is_one_line_and_leaves_the_base_alone(tmp_path, capsys, change, args, message, base_run):
    if change == "dense":
        base = base_run
    else:
        norm = ["model.pattention_norm=softmax"] if change == "softmax" else []
        base = _pattention_run(tmp_path / "base", *norm)
    before = _tree_digest(base)
    capsys.readouterr()  # the base's training log
    code = main(["grow", str(base), *args, "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert _tree_digest(base) == before and not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------------------------- pruning (OPTIN)
def _masked_network_and_batch():
    from iclab.models.pruning import add_unit_masks

    cfg, model = _network("transformer")
    add_unit_masks(model)
    task = make_task(cfg.task)
    return model, task, task.train_batch(6, 11, 0)


def _without(model, unit, fn):
    """``fn()`` with ``unit`` removed by zeroing its weights (not its mask): the independent way to ablate it."""
    block = model.backbone.blocks[unit.layer]
    if unit.kind == "head":
        d = block.attn.proj.in_features
        dh = d // block.attn.n_head
        weight = block.attn.proj.weight
        cols = slice(unit.index * dh, (unit.index + 1) * dh)
    else:
        weight, cols = block.mlp.proj.weight, slice(unit.index, unit.index + 1)
    saved = weight[:, cols].clone()
    with torch.no_grad():
        weight[:, cols] = 0
        out = fn()
        weight[:, cols] = saved
    return out


def test_optin_scores_are_the_papers_definition():
    """OPTIN's importance of a unit, computed independently in numpy: the sum over later layers of the squared
    Frobenius distance between normalised-feature Gram matrices with and without the unit, plus the output change
    (squared error for regression), each term divided by its mean over the units."""
    import numpy as np

    from iclab.change.prune import score_units

    model, task, batch = _masked_network_and_batch()
    units, scores = score_units(model, batch, "optin", kl_weight=0.5, error_scale=2.0)
    blocks = list(model.backbone.blocks)

    def features_and_output():
        feats = []
        handles = [b.register_forward_hook(lambda m, i, o: feats.append(o.detach().numpy().copy())) for b in blocks]
        with torch.no_grad():
            out = model(batch.xs, batch.ys).double().numpy()
        for h in handles:
            h.remove()
        grams = []
        for f in feats:
            f = f.reshape(-1, f.shape[-1]).astype(np.float64)
            f /= np.linalg.norm(f, axis=1, keepdims=True)
            grams.append(f @ f.T)
        return grams, out

    base_grams, base_out = features_and_output()
    gram, change = [], []
    for u in units:
        grams, out = _without(model, u, features_and_output)
        gram.append(sum(((grams[i] - base_grams[i]) ** 2).sum() for i in range(u.layer + 1, len(blocks))))
        change.append(((out - base_out) ** 2).mean() / 2.0)
    expected = np.array(gram) / np.mean(gram) + 0.5 * np.array(change) / np.mean(change)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-7)
    assert len({round(s, 6) for s in scores}) > len(scores) // 2  # the scores tell units apart


def test_optin_output_term_for_logits_is_the_kl_divergence():
    import numpy as np
    from scipy.special import log_softmax

    from iclab.change.prune import _output_change

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, 7, generator=g), torch.randn(3, 5, 7, generator=g)
    p, q = log_softmax(a.double().numpy(), -1), log_softmax(b.double().numpy(), -1)
    expected = (np.exp(p) * (p - q)).sum(-1).mean()
    assert _output_change(a.double(), b.double(), 1.0) == pytest.approx(expected, rel=1e-9)


def test_magnitude_and_random_scores():
    from iclab.change.prune import score_units

    model, _, batch = _masked_network_and_batch()
    units, scores = score_units(model, batch, "magnitude")
    block = model.backbone.blocks[1]
    d = block.attn.proj.in_features
    dh = d // block.attn.n_head
    head1 = [i for i, u in enumerate(units) if u.kind == "head" and u.layer == 1 and u.index == 1][0]
    w = block.attn.qkv.weight.detach()
    rows = torch.cat([w[j * d + dh : j * d + 2 * dh] for j in range(3)])
    assert scores[head1] == pytest.approx(float(rows.norm() * block.attn.proj.weight.detach()[:, dh:].norm()), rel=1e-6)
    neuron = [i for i, u in enumerate(units) if u.kind == "neuron" and u.layer == 0 and u.index == 7][0]
    mlp = model.backbone.blocks[0].mlp
    fc, proj = mlp.fc.weight.detach(), mlp.proj.weight.detach()
    assert scores[neuron] == pytest.approx(float(fc[7].norm() * proj[:, 7].norm()), rel=1e-6)
    _, first = score_units(model, batch, "random", seed=3)
    _, again = score_units(model, batch, "random", seed=3)
    _, other = score_units(model, batch, "random", seed=4)
    assert first == again and first != other


def test_choose_keeps_the_budget_per_kind_by_score():
    """Per kind, the highest scores until the kept share of that kind's FLOPs reaches ``keep``, and no more."""
    from iclab.change.prune import choose
    from iclab.models.pruning import Unit

    units = [Unit("head", 0, i, 10.0) for i in range(4)] + [Unit("neuron", 0, i, 1.0) for i in range(10)]
    scores = [4.0, 1.0, 3.0, 2.0] + [float(i) for i in range(10)]
    kept = choose(units, scores, 0.5)
    assert kept[:4] == [True, False, True, False]
    assert kept[4:] == [False] * 5 + [True] * 5
    assert choose(units, scores, 1.0) == [True] * len(units)
    assert sum(choose(units, scores, 0.3)[:4]) == 2  # rounds up to the next whole unit: at least the budget


def test_pruning_a_run_writes_a_run_folder_that_evaluates_and_reports(base_run, tmp_path, capsys):
    """The pruned run holds the masks beside the weights at the base's step; its kept shares are the budget's; the
    evaluation sees the masked network; the report says where it came from; the base is untouched."""
    from iclab.training.checkpoint import latest_checkpoint

    before = _tree_digest(base_run)
    out = tmp_path / "pruned"
    assert main(["prune", str(base_run), "--method", "optin", "--keep", "0.5", "--out", str(out)]) == 0
    summary = json.loads((out / "prune.json").read_text())
    assert (summary["heads"], summary["neurons"]) == (4, 128)
    assert (summary["heads_kept"], summary["neurons_kept"]) == (2, 64)
    assert set(summary["score_vs_ablation_spearman"]) == {"head", "neuron"}
    state = latest_checkpoint(out)
    assert state.step == 30
    masks = {k: v for k, v in state.model.items() if k.endswith(("head_mask", "neuron_mask"))}
    assert sum(int(v.sum()) for v in masks.values()) == 66
    kept = {u["unit"] for u in summary["units"] if u["kept"]}
    for u in summary["units"]:
        name = f"backbone.blocks.{u['layer']}.{'attn.head_mask' if u['kind'] == 'head' else 'mlp.neuron_mask'}"
        assert bool(masks[name][u["index"]]) == (u["unit"] in kept)
    page = (out / "report.html").read_text()
    assert "Started from" in page and "optin, no retraining: kept 0.5" in page and "2 of 4 heads" in page
    assert "heads&#x27; and neurons&#x27; FLOPs" in page  # escaped once
    assert "model" in (out / "eval" / "curves.csv").read_text()
    assert _tree_digest(base_run) == before
    assert main(["eval", str(out), "--prompts", "16"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--keep", "0"], "--keep: must be a share of the FLOPs in (0, 1], got 0.0"),
        (["--keep", "1.5"], "--keep: must be a share of the FLOPs in (0, 1], got 1.5"),
        (["--keep", "0.5", "--method", "banana"], "--method: 'banana' is not a pruning method"),
        (["--keep", "0.5", "--method", "optin(kl=2)"], "prune.kl: unknown field"),
    ],
)
def test_bad_pruning_is_one_line_and_leaves_the_base_alone(base_run, tmp_path, capsys, args, message):
    before = _tree_digest(base_run)
    code = main(["prune", str(base_run), *args, "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert _tree_digest(base_run) == before and not (tmp_path / "new").exists()


def test_pruning_refuses_families_without_units_pruned_runs_and_existing_folders(base_run, tmp_path, capsys):
    lstm = tmp_path / "lstm"
    cfg = load_config(
        None,
        ["task.n_dims=3", "task.n_points=7", *tiny_model("rnn"), "train.steps=4", "train.batch_size=8"]
        + ["train.warmup_steps=1", "train.eval_every=0", "train.device=cpu"],
    )
    train(cfg, lstm, progress_bar=False)
    assert main(["prune", str(lstm), "--keep", "0.5", "--out", str(tmp_path / "a")]) == 2
    assert "has no attention heads or MLP neurons to prune" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    pruned = tmp_path / "p"
    assert main(["prune", str(base_run), "--method", "random", "--keep", "0.5", "--out", str(pruned)]) == 0
    capsys.readouterr()
    assert main(["prune", str(pruned), "--keep", "0.5", "--out", str(tmp_path / "b")]) == 2
    assert "is already pruned; prune the run it came from" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    assert main(["prune", str(base_run), "--keep", "0.5", "--out", str(tmp_path / "taken")]) == 2
    assert "exists" in capsys.readouterr().err and (tmp_path / "taken" / "x").read_text() == "keep"
    tokens = _pattention_run(tmp_path / "pat")
    capsys.readouterr()
    assert main(["prune", str(tokens), "--method", "magnitude", "--keep", "0.5", "--out", str(tmp_path / "c")]) == 2
    assert "magnitude reads the heads' and neurons' weight rows" in capsys.readouterr().err
