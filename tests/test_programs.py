"""Transformer Programs (iclab.models.program) and their decompilation (iclab.decompile): the attention modules
against the program's primitives on every short input, the lookup tables against the MLPs, the program against
the model on whole held-out splits, the paper's data, and bad input."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from iclab.config import load_config
from iclab.decompile import PRIMITIVES, check_program, decompile_run
from iclab.models.program import (
    CategoricalAttention,
    CategoricalMLP,
    NumericalAttention,
    TransformerProgramConfig,
    closeness_rank,
)
from iclab.tasks import TASKS, make_task
from iclab.tasks.rasp import program_labels
from iclab.training.loop import train


def _primitives(causal: bool) -> dict:
    ns = {"CAUSAL": causal}
    exec(PRIMITIVES, ns)
    return ns


def _choose(read, choices: list[int]) -> None:
    with torch.no_grad():
        read.logits.fill_(-1.0)
        for r, c in enumerate(choices):
            read.logits[r, c] = 1.0


def _predicate(module, pmap: list[int]) -> None:
    with torch.no_grad():
        module.predicate.logits.fill_(-1.0)
        for q, k in enumerate(pmap):
            module.predicate.logits[0, q, k] = 1.0


def _allowed(b: int, t: int, causal: bool) -> torch.Tensor:
    full = torch.ones(t, t, dtype=torch.bool)
    return (full.tril() if causal else full).expand(b, t, t)


def _streams(t: int, k: int):
    """Every pair of query and key sequences of length ``t`` over ``k`` values (sampled beyond 3 tokens)."""
    seqs = list(itertools.product(range(k), repeat=t))
    pairs = list(itertools.product(seqs, seqs))
    if len(pairs) > 3000:
        pairs = random.Random(t).sample(pairs, 3000)
    q = torch.tensor([p[0] for p in pairs])
    kk = torch.tensor([p[1] for p in pairs])
    positions = torch.arange(t).expand(len(pairs), t)
    return q, kk, positions


@pytest.mark.parametrize("causal", [True, False])
def test_categorical_attention_equals_select_closest_on_every_short_input(causal):
    """Ties, self-matches and no match at all: the module's discrete attention attends where the program's
    select_closest + aggregate says, for every predicate over 3 values and every input of up to 3 tokens (3,000
    sampled at 4 and 5)."""
    k = 3
    ns = _primitives(causal)
    head = CategoricalAttention(1, 3, k)
    _choose(head.read_q, [0])
    _choose(head.read_k, [1])
    _choose(head.read_v, [2])  # the value is the position: the output says where the head attended
    checked = 0
    for pmap in itertools.product(range(k), repeat=k):
        _predicate(head, list(pmap))
        for t in range(1, 6):
            if t > 3 and pmap != (1, 2, 0) and pmap != (0, 0, 0):
                continue  # two predicates at the longer lengths
            q, kk, positions = _streams(t, k)
            cat = torch.stack([q, kk, positions], 2)
            got = head.discrete(cat, _allowed(len(q), t, causal))[:, :, 0]
            for row in range(len(q)):
                keys, queries = kk[row].tolist(), q[row].tolist()
                attended = ns["select_closest"](keys, queries, lambda a, b: pmap[a] == b)
                assert got[row].tolist() == ns["aggregate"](attended, list(range(t)))
                checked += 1
    assert checked > 20000


def test_the_closeness_order_is_the_papers_tie_rule():
    rank = closeness_rank(5)
    i = 2
    order = sorted(range(5), key=lambda j: rank[i, j].item())
    assert order == [1, 3, 0, 4, 2]  # closest first, the earlier at equal distance, the query itself last


@pytest.mark.parametrize("causal", [True, False])
def test_numerical_attention_sums_over_every_selected_key(causal):
    k = 3
    ns = _primitives(causal)
    head = NumericalAttention(1, 2, 2, k)
    _choose(head.read_q, [0])
    _choose(head.read_k, [1])
    _choose(head.read_v, [1])
    gen = torch.Generator().manual_seed(0)
    for pmap in itertools.product(range(k), repeat=k):
        _predicate(head, list(pmap))
        for t in (1, 2, 3, 4):
            q, kk, _ = _streams(t, k)
            values = torch.randint(0, 7, q.shape, generator=gen).double()
            num = torch.stack([torch.ones_like(values), values], 2)
            got = head.discrete(torch.stack([q, kk], 2), num, _allowed(len(q), t, causal))[:, :, 0]
            for row in range(0, len(q), 7):
                selected = ns["select"](kk[row].tolist(), q[row].tolist(), lambda a, b: pmap[a] == b)
                want = ns["numerical_aggregate"](selected, [int(v) for v in values[row].tolist()])
                assert got[row].tolist() == want


def test_lookup_tables_equal_the_mlps_on_every_enumerated_input():
    torch.manual_seed(0)
    k = 6
    cat = CategoricalMLP(4, k, 16, numerical=False)
    a, b = torch.arange(k).repeat_interleave(k), torch.arange(k).repeat(k)
    x = torch.cat([torch.nn.functional.one_hot(a, k), torch.nn.functional.one_hot(b, k)], 1).float()
    want = cat.out(torch.relu(cat.fc(x))).argmax(-1)
    assert torch.equal(cat.table(a, b), want)
    assert len(set(want.tolist())) > 1
    num = CategoricalMLP(3, k, 16, numerical=True)
    a, b = torch.arange(30).repeat_interleave(30).double(), torch.arange(30).repeat(30).double()
    want = num.out(torch.relu(num.fc(torch.stack([a, b], 1).float()))).argmax(-1)
    assert torch.equal(num.table(a, b), want)
    # the table of a pair does not depend on which other pairs are asked for with it
    assert torch.equal(num.table(a[:7], b[:7]), num.table(a, b)[:7])


def test_the_temperature_anneals_geometrically_over_the_run():
    cfg = TransformerProgramConfig(n_layer=1, d_var=8, n_positions=8)
    net = cfg.build(8, 8, vocab_size=8)
    net.at_step(0, 101)
    assert net.tau == pytest.approx(3.0)
    net.at_step(50, 101)
    assert net.tau == pytest.approx((3.0 * 0.01) ** 0.5)
    net.at_step(100, 101)
    assert net.tau == pytest.approx(0.01)


def test_a_token_beyond_the_variables_is_refused_in_training_and_eval():
    """The token variable holds ids 0 .. d_var - 1 (the task's input vocabulary); a label id fed in is refused in
    one line, not turned into a wrong one-hot."""
    from iclab.errors import UserError
    from iclab.models.encoders import Layout

    cfg = TransformerProgramConfig(n_layer=1, d_var=8, n_positions=8)
    net = cfg.build(8, 15, vocab_size=15)
    tokens = torch.tensor([[1, 3, 9]])
    layout = Layout(positions=torch.arange(3), readout=torch.arange(3), attn_mask=None)
    for training in (True, False):
        net.train(training)
        with pytest.raises(UserError, match="token id 9, but model.d_var is 8"):
            net(tokens, layout)


# ---------------------------------------------------------------------------------------------- end to end


def _program_run(tmp_path, name, task: list[str], model: list[str], steps: int, stop_after=None):
    cfg = load_config(
        None,
        [
            f"name={name}",
            "task.name=rasp",
            *task,
            "model.name=transformer_program",
            *model,
            f"train.steps={steps}",
            "train.batch_size=128",
            "train.lr=0.05",
            "train.warmup_steps=0",
            "train.min_lr_ratio=1.0",
            "train.grad_clip=0",
            "train.threads=1",
            "train.eval_every=0",
            f"train.checkpoint_every={steps}",
        ],
    )
    out = tmp_path / name
    train(cfg, out, stop_after=stop_after, progress_bar=False)
    return out


def test_the_program_is_the_model_on_the_held_out_split_of_an_encoder_task(tmp_path):
    """The paper's hist (bidirectional, padded batches): the decompiled program predicts exactly what the model
    predicts at every position of 500 held-out inputs, and the model has learned the task."""
    run = _program_run(
        tmp_path,
        "hist",
        ["task.program=hist", "task.data=paper", "task.n_train=2000"],
        ["model.n_layer=1", "model.n_heads_cat=2", "model.n_heads_num=2"],
        steps=250,
    )
    decompile_run(run)
    check = check_program(run, 500)
    assert check["agree"] == check["positions"] > 3000
    assert check["accuracy"] > 0.9  # measured 0.98 at 300 steps of batch 256


def test_the_program_is_the_model_on_a_causal_task_with_numerical_mlps(tmp_path, monkeypatch):
    run = _program_run(
        tmp_path,
        "dyck",
        ["task.program=dyck1", "task.data=paper", "task.n_train=2000"],
        ["model.n_layer=2", "model.n_heads_cat=2", "model.n_heads_num=2", "model.d_mlp=16"],
        steps=60,
    )
    decompile_run(run)
    check = check_program(run, 300)
    assert check["agree"] == check["positions"] == 300 * 16
    source = (run / "program" / "program.py").read_text()
    assert "import torch" not in source and "iclab" not in source.split('"""', 2)[2]
    assert "def num_mlp_1_0(" in source and "select_closest(" in source
    # numerical MLPs over large domains are written as runs of equal outputs: exact too
    monkeypatch.setattr("iclab.decompile.NUMERIC_SET_LIMIT", 1)
    decompile_run(run)
    assert "NUM_MLP_1_0_RUNS" in (run / "program" / "program.py").read_text()
    check = check_program(run, 300)
    assert check["agree"] == check["positions"]


def test_a_program_run_resumes_bitwise(tmp_path):
    common = (["task.program=hist", "task.data=paper", "task.n_train=500"], ["model.n_layer=1", "model.d_mlp=8"])
    straight = _program_run(tmp_path, "straight", *common, steps=12)
    cut = _program_run(tmp_path, "cut", *common, steps=12, stop_after=5)
    cfg = load_config(cut / "config.yaml", [])
    train(cfg, cut, resume=True, progress_bar=False)
    a, b = (torch.load(r / "checkpoints" / "step-00000012" / "model.pt") for r in (straight, cut))
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "iclab", *args], capture_output=True, text=True, cwd=cwd)


def test_decompile_refuses_other_families_and_unfinished_runs_in_one_line(tmp_path):
    unfinished = _program_run(
        tmp_path, "unfinished", ["task.program=hist", "task.n_train=500"], ["model.n_layer=1"], steps=8, stop_after=4
    )
    before = sorted(p.name for p in unfinished.rglob("*"))
    proc = _cli("decompile", str(unfinished))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "unfinished (4 of 8 steps)" in proc.stderr
    assert sorted(p.name for p in unfinished.rglob("*")) == before  # nothing written
    other = tmp_path / "transformer"
    cfg = load_config(
        None,
        [
            "task.name=rasp",
            "task.program=hist",
            "task.n_train=500",
            "model.n_layer=1",
            "model.n_embd=16",
            "model.n_head=2",
            "train.steps=2",
            "train.batch_size=8",
            "train.eval_every=0",
            "train.threads=1",
        ],
    )
    train(cfg, other, progress_bar=False)
    proc = _cli("decompile", str(other))
    assert proc.returncode == 2 and "a transformer run; only transformer_program runs" in proc.stderr
    assert not (other / "program").exists()


def test_a_width_below_the_vocabulary_and_a_recurrent_encoder_are_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("task: {name: rasp, program: hist, data: paper}\nmodel: {name: transformer_program}\n")
    proc = _cli("train", str(config), "--set", "model.d_var=6", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "model.d_var" in proc.stderr and "input vocabulary (8 symbols" in proc.stderr
    proc = _cli("train", str(config), "--set", "model.name=rnn", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "reads a whole input at once" in proc.stderr
    proc = _cli("train", str(config), "--set", "task.name=linear_regression", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------- the paper's data


def _statement_dyck(rng: random.Random, n: int = 15, kinds: int = 1) -> list[str]:
    """The reference's Dyck generator, written from its description: half a balanced string of 1..n//2+1 pairs
    (each step puts a random pair after the string or around it) cut or padded with random brackets, half random
    brackets."""
    brackets = ["(", ")", "{", "}"][: 2 * kinds]
    if rng.random() < 0.5:
        s: list[str] = []
        for _ in range(rng.randint(1, n // 2 + 1)):
            kind = rng.randrange(kinds)
            pair = brackets[2 * kind : 2 * kind + 2]
            s = s + pair if rng.random() < 0.5 else [pair[0], *s, pair[1]]
        s = s + [rng.choice(brackets) for _ in range(max(n - len(s), 0))]
        return s[:n]
    return [rng.choice(brackets) for _ in range(n)]


@pytest.mark.parametrize("program, kinds", [("dyck1", 1), ("dyck2", 2)])
def test_paper_dyck_data_follows_the_reference_generator(program, kinds):
    cfg = TASKS["rasp"].Config(program=program, data="paper", n_train=None)
    cfg.validate()
    task = make_task(cfg)
    rng = np.random.default_rng(0)
    ours = [task.sample_input(rng) for _ in range(20000)]
    r = random.Random(0)
    theirs = [_statement_dyck(r, 15, kinds) for _ in range(20000)]
    assert all(len(x) == 15 for x in ours)
    for pos in (0, 4, 9, 14):  # the label frequencies at several positions agree within sampling noise
        a = Counter(program_labels(program, x)[pos] for x in ours)
        b = Counter(program_labels(program, x)[pos] for x in theirs)
        for label in "PTF":
            assert abs(a[label] - b[label]) / 20000 < 0.02, (pos, label, a, b)
    # the share of strings that are balanced at the end, and of strings that are prefixes of a balanced one
    for stat in (lambda x: program_labels(program, x)[-1] == "T", lambda x: program_labels(program, x)[-1] == "P"):
        assert abs(sum(map(stat, ours)) - sum(map(stat, theirs))) / 20000 < 0.02


def test_paper_layouts_and_scoring():
    def task(program):
        cfg = TASKS["rasp"].Config(program=program, data="paper", n_train=100)
        cfg.validate()
        return make_task(cfg)

    t = task("most_freq")
    ex = t.example(["b", "a", "b"])
    symbols = t.vocab.symbols
    assert [symbols[i] for i in ex.sequence] == ["<s>", "b", "a", "b"]
    assert [symbols[i] if s else None for i, s in zip(ex.targets, ex.scored)] == [None, "b", "a", "<s>"]
    assert t.bidirectional and t.max_tokens == 8
    t = task("sort")
    ex = t.example(["c", "a"])
    assert [t.vocab.symbols[i] for i in ex.sequence] == ["<s>", "c", "a", "</s>"]
    assert ex.scored.tolist() == [False, True, True, False] and t.max_tokens == 8
    t = task("induction")
    rng = np.random.default_rng(1)
    for _ in range(200):
        xs = t.sample_input(rng)
        assert len(xs) == 9 and set(xs) <= set("abcd0123")
        letters = [x for x in xs if x.isalpha()]
        assert len(letters) in (4, 5)
        labels = program_labels("induction", xs, paper=True)
        for i, x in enumerate(xs):
            if x.isalpha():
                assert labels[i] == ("?" if x not in xs[:i] else xs[xs.index(x) + 1])
    assert not t.bidirectional


def test_numerical_mlps_written_as_runs_equal_their_tables():
    from iclab.decompile import _runs_source, _table

    torch.manual_seed(3)
    mlp = CategoricalMLP(3, 6, 16, numerical=True)
    da, db = list(range(40)), list(range(25))
    outputs = _table(mlp, da, db, False, True).tolist()
    ns: dict = {}
    exec("\n".join(_runs_source("num_mlp_2_0", "x", "y", da, db, outputs, False)), ns)
    assert [ns["num_mlp_2_0"](x, y) for x in da for y in db] == outputs
    assert len(set(outputs)) > 1
    ns = {}
    diagonal = _table(mlp, da, da, True, True).tolist()
    exec("\n".join(_runs_source("num_mlp_2_0", "x", "x_2", da, da, diagonal, True)), ns)
    assert [ns["num_mlp_2_0"](x, x) for x in da] == diagonal
    with pytest.raises(ValueError, match="outside every value"):
        ns["num_mlp_2_0"](99, 99)


def test_the_circuit_reads_predicates_as_a_researcher_would():
    from iclab.analysis.program_instruments import describe_predicate

    symbols = [".", "<s>", "a", "b", "c"]
    inputs = {1, 2, 3, 4}
    assert describe_predicate([0, 1, 2, 3, 4], "token", "token", symbols, inputs, 8) == "q == k"
    assert describe_predicate([0, 0, 2, 3, 0], "token", "token", symbols, inputs, 8).startswith(
        "q == k for q in {a, b}"
    )
    previous = [5, 0, 1, 2, 3, 4, 5, 6]
    assert describe_predicate(previous, "position", "position", symbols, inputs, 8).startswith(
        "k == q - 1 (the previous position); except 0->5"
    )
    assert describe_predicate([1] * 5, "token", "token", symbols, inputs, 8) == "k == <s>"


def test_a_program_recipe_switched_to_another_task_refits_its_width():
    """The sort recipe resolves d_var = 8; --set task.program=dyck1 needs 16 (its 16 positions)."""
    from iclab.config import apply_overrides, release_fitted_positions, run_config_from_dict, to_dict
    from iclab.recipes import RECIPES

    base = to_dict(RECIPES["friedman2023_program"]())
    assert base["model"]["d_var"] == 8
    overrides = ["task.program=dyck1"]
    cfg = run_config_from_dict(apply_overrides(release_fitted_positions(base, overrides), overrides))
    assert cfg.model.d_var == 16
    chosen = ["task.program=reverse", "model.d_var=12"]  # a width the user chose stays
    cfg = run_config_from_dict(apply_overrides(release_fitted_positions(base, chosen), chosen))
    assert cfg.model.d_var == 12
