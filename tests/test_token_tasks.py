"""Arithmetic (Lee et al. 2023), the RASP suite (Friedman et al. 2023) and multi-query associative recall (Zoology):
format strings against the reference's own data, every scratchpad line against an independent digit-by-digit
addition, sampler statistics, the program labels against independent definitions, an oracle scoring 100% on each
task, decoding, and bad input."""

import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.kinds import build_for_task
from iclab.kinds.tokens.generation import evaluate_generation, generate
from iclab.kinds.tokens.metrics import token_metrics
from iclab.learners import make_learner
from iclab.models import MODELS
from iclab.tasks import TASKS, make_task
from iclab.tasks.arithmetic import (
    FORMATS,
    balanced_pairs,
    carries,
    format_example,
    parse_answer,
)
from iclab.tasks.rasp import PROGRAMS, program_labels


def task_of(name, **fields):
    cfg = TASKS[name].Config(**fields)
    cfg.validate()
    return make_task(cfg)


# ---------------------------------------------------------------------------------------------- arithmetic

# lines of the reference's training files (lee-ny/teaching_arithmetic: data/addition_dollar_reverse_curr_bal2/
# add_examples_500.txt, data/ar_simple/add_examples_algorithmic_1000.txt, data/algo_reasoning/
# add_examples_algorithmic_500.txt), and the plain example of the paper
REFERENCE = {
    "plain": {(128, 367): "128+367=495\n"},
    "reverse": {
        (826, 574): "$826+574=0041$\n",
        (3, 9): "$3+9=21$\n",
        (864, 37): "$864+37=109$\n",
        (2, 7): "$2+7=9$\n",
        (99, 16): "$99+16=511$\n",
    },
    "simple_scratchpad": {
        (638, 662): "Input:\n638+662\nTarget:\nA->0 , C->1\nA->0 , C->1\nA->3 , C->1.\n1300\n",
        (497, 97): "Input:\n497+97\nTarget:\nA->4 , C->1\nA->9 , C->1\nA->5 , C->0.\n594\n",
        (5, 3): "Input:\n5+3\nTarget:\nA->8 , C->0.\n8\n",
        (0, 11): "Input:\n0+11\nTarget:\nA->1 , C->0\nA->1 , C->0.\n11\n",
    },
    "scratchpad": {
        (864, 37): "Input:\n864+37\nTarget:\n<scratch>\n[8,6,4] has 3 digits.\n[3,7] has 2 digits.\n"
        "[8,6,4] + [3,7] , A=[] , C=0 , 4+7+0=11 , A->1 , C->1\n"
        "[8,6] + [3] , A=[1] , C=1 , 6+3+1=10 , A->0 , C->1\n"
        "[8] + [] , A=[0,1] , C=1 , 8+0+1=9 , A->9 , C->0\n"
        "[] + [] , A=[9,0,1] C=0 , END\n</scratch>\n9 0 1\n",
        (3, 9): "Input:\n3+9\nTarget:\n<scratch>\n[3] has 1 digits.\n[9] has 1 digits.\n"
        "[3] + [9] , A=[] , C=0 , 3+9+0=12 , A->2 , C->1\n[] + [] , A=[2] C=1 , END\n</scratch>\n1 2\n",
        (15, 404): "Input:\n15+404\nTarget:\n<scratch>\n[1,5] has 2 digits.\n[4,0,4] has 3 digits.\n"
        "[1,5] + [4,0,4] , A=[] , C=0 , 5+4+0=9 , A->9 , C->0\n"
        "[1] + [4,0] , A=[9] , C=0 , 1+0+0=1 , A->1 , C->0\n"
        "[] + [4] , A=[1,9] , C=0 , 0+4+0=4 , A->4 , C->0\n"
        "[] + [] , A=[4,1,9] C=0 , END\n</scratch>\n4 1 9\n",
    },
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_formats_are_byte_exact_against_the_reference(fmt):
    for (a, b), line in REFERENCE[fmt].items():
        prompt, answer = format_example(a, b, fmt)
        assert prompt + answer == line
        assert parse_answer(answer, fmt) == a + b


def _column_sum(a, b, i):
    """Digit i (from the right) of a + b before carrying out: independent of any running carry."""
    return (a % 10 ** (i + 1) + b % 10 ** (i + 1)) // 10**i


@pytest.mark.parametrize("fmt", ["simple_scratchpad", "scratchpad"])
def test_every_scratchpad_line_matches_digit_by_digit_addition(fmt):
    rng = np.random.default_rng(0)
    pairs = [(int(a), int(b)) for a, b in rng.integers(0, 10 ** rng.integers(1, 7, size=(300, 2)))]
    pairs += [(999, 1), (0, 0), (5, 95), (99999, 99999)]
    for a, b in pairs:
        _, answer = format_example(a, b, fmt)
        steps = re.findall(r"A->(\d) , C->(\d)", answer)
        assert len(steps) == max(len(str(a)), len(str(b))), (a, b)
        for i, (digit, carry) in enumerate(steps):
            s = _column_sum(a, b, i)
            assert (int(digit), int(carry)) == (s % 10, s // 10), (a, b, i)
        if fmt == "scratchpad":
            sums = re.findall(r"(\d)\+(\d)\+(\d)=(\d+)", answer)
            for i, (x, y, c, s) in enumerate(sums):
                assert (int(x), int(y)) == (a // 10**i % 10, b // 10**i % 10)
                assert int(c) == _column_sum(a, b, i - 1) // 10 if i else int(c) == 0
                assert int(x) + int(y) + int(c) == int(s)
            partial = re.findall(r"A=\[([\d,]*)\]", answer)
            for i, digits in enumerate(partial):  # before step i: the answer's last i digits
                assert digits == ",".join(str((a + b) // 10**j % 10) for j in reversed(range(i)))
        assert parse_answer(answer, fmt) == a + b


def test_parse_rejects_what_is_not_an_answer():
    assert parse_answer("12a\n", "plain") is None and parse_answer("\n", "plain") is None
    assert parse_answer("A->1 , C->0\n", "simple_scratchpad") is None
    assert parse_answer("<scratch>\n", "scratchpad") is None
    assert parse_answer("594$\n", "reverse") == 495


def test_balanced_sampler_statistics():
    pairs = balanced_pairs(np.random.default_rng(1), 10000, 3)
    assert len(set(pairs)) == 10000
    assert pairs[:100] == [(a, b) for a in range(10) for b in range(10)]  # every 1-digit pair
    assert all(a < 100 and b < 100 for a, b in pairs[100:1000])  # int(900 * N / 10000) pairs from 0-99
    assert max(max(a, b) for a, b in pairs[1000:]) >= 900
    assert Counter(carries(a, b) for a, b in pairs) == {0: 2500, 1: 2500, 2: 2500, 3: 2500}
    small = balanced_pairs(np.random.default_rng(2), 2000, 3)
    counts = Counter(carries(a, b) for a, b in small)
    assert sum(counts.values()) == 2000 and max(counts.values()) <= 500
    assert all(a < 100 and b < 100 for a, b in small[100:280])


def test_carries_counts_carry_operations():
    for a, b in [(0, 0), (5, 5), (999, 1), (128, 367), (45, 55), (12345, 87655)]:
        expected, c = 0, 0
        for i in range(7):
            c = (a // 10**i % 10 + b // 10**i % 10 + c) >= 10
            expected += c
        assert carries(a, b) == expected


def test_held_out_pairs_are_never_training_pairs_and_length_generalisation_draws_longer_numbers():
    task = task_of("arithmetic", n_train=2000)
    train = {ex.key for ex in task.training_set()}
    held = task.eval_examples(500, seed=3)
    assert not {ex.key for ex in held} & train and len({ex.key for ex in held}) == 500
    longer = task_of("arithmetic", n_train=2000, eval_digits=4).eval_examples(200, seed=3)
    assert max(ex.meta["digits"] for ex in longer) == 4 and sum(ex.meta["digits"] == 4 for ex in longer) > 150


@pytest.mark.parametrize("loss_on", ["all", "answer"])
def test_loss_on_all_tokens_or_the_answer_only(loss_on):
    task = task_of("arithmetic", n_train=200, loss_on=loss_on, format="plain")
    batch = task.train_batch(8, seed=0, step=0)
    for row_t, row_y in zip(batch.tokens, batch.targets):
        text = task.vocab.decode(row_t)
        scored = (row_y >= 0).sum().item()
        n_answer = len(text.split("=")[1]) + 1  # the answer's characters and the newline after it
        assert scored == (len(text) if loss_on == "all" else n_answer), text
    held = task.eval_prompts(4, seed=0)  # held-out prompts always score the answer only
    for row_t, row_y in zip(held.tokens, held.targets):
        assert (row_y >= 0).sum().item() == len(task.vocab.decode(row_t).split("=")[1]) + 1


class _Lookup(nn.Module):
    """A language model that knows the answers: the next token of the held-out string that extends the input."""

    def __init__(self, texts, vocab):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.texts, self.vocab = texts, vocab

    def forward(self, tokens):
        out = torch.full((*tokens.shape, len(self.vocab)), -10.0)
        for i, row in enumerate(tokens):
            prefix = "".join(self.vocab.symbols[int(t)] for t in row)
            text = next(t for t in self.texts if t.startswith(prefix) or prefix.startswith(t))  # (finished rows
            # of a batch go on being extended)
            nxt = text[len(prefix)] if len(text) > len(prefix) else "\n"
            out[i, -1, self.vocab.symbols.index(nxt)] = 10.0
        return out + 0 * self.w


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_oracle_decodes_every_held_out_answer_exactly(fmt):
    task = task_of("arithmetic", n_train=300, format=fmt)
    examples = task.eval_examples(40, seed=0)
    model = _Lookup(["".join(task.vocab.symbols[int(t)] for t in ex.sequence) for ex in examples], task.vocab)
    rows, records = evaluate_generation(model, task, examples)
    overall = {r["learner"]: r["exact_match"] for r in rows if r["group"] == "all"}
    assert overall == {"model": 1.0, "oracle": 1.0}
    assert all(r["answer"] == r["expected"] for r in records)
    assert {r["group"] for r in rows} == {"all", "digits", "carries"}
    assert sum(r["n"] for r in rows if r["learner"] == "model" and r["group"] == "digits") == 40


class _Counter(nn.Module):
    """Next token = last token + 1 (mod V), with a little mass on every other token."""

    def __init__(self, v):
        super().__init__()
        self.v = v
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        return 5.0 * nn.functional.one_hot((tokens + 1) % self.v, self.v).float() + self.w


def test_generate_is_greedy_stops_early_and_samples_reproducibly():
    model = _Counter(10)
    out = generate(model, [[1, 2], [7], [3, 4]], [3, 4, 2], done=lambda new: new[-1] == 9)
    assert out == [[3, 4, 5], [8, 9], [5, 6]]
    a = generate(model, [[1]] * 6, 5, temperature=1.0, seed=3)
    assert a == generate(model, [[1]] * 6, 5, temperature=1.0, seed=3) and len({tuple(r) for r in a}) > 1
    assert generate(model, [[1]] * 3, 4, temperature=2.0, top_k=1) == [[2, 3, 4, 5]] * 3


def test_arithmetic_oracle_learner_is_perfect_on_held_out_prompts():
    task = task_of("arithmetic", n_train=500, format="simple_scratchpad")
    prompts = task.eval_prompts(30, seed=0)
    m = token_metrics(make_learner("oracle", task=task).predict(prompts), prompts)
    assert m["accuracy"][prompts.scored].min() == 1 and m["tvd"][prompts.scored].abs().max() < 1e-12


def test_cli_refuses_numbers_longer_than_the_context_before_writing(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iclab",
            "train",
            "--recipe",
            "lee2023_arithmetic",
            "--set",
            "task.n_digits=12",
            "--set",
            "model.n_positions=30",
            "--set",
            "train.steps=1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.count("\n") == 1 and "model.n_positions: must be at least" in proc.stderr


# ---------------------------------------------------------------------------------------------- RASP


def _reduce(s):
    """Cancel matched bracket pairs until none is left (an independent Dyck recogniser)."""
    while "()" in s or "{}" in s:
        s = s.replace("()", "").replace("{}", "")
    return s


def test_program_labels_by_hand():
    assert program_labels("reverse", list("abcd")) == list("dcba")
    assert program_labels("sort", list("dbca")) == list("abcd")
    assert program_labels("hist", list("aabc")) == list("2211")
    assert program_labels("double_hist", list("aabc")) == list("1122")
    assert program_labels("most_freq", list("abbccc")) == ["c", "b", "a", None, None, None]
    assert program_labels("most_freq", list("babc")) == ["b", "a", "c", None]  # ties: first occurrence
    assert program_labels("dyck1", list("(()))(")) == list("PPPTFF")
    assert program_labels("dyck2", list("({})({)")) == list("PPPTPPF")
    assert program_labels("induction", list("a1b2a1c3b")) == [None, None, None, None, "1", None, None, None, "2"]


@pytest.mark.parametrize("program", ["dyck1", "dyck2"])
def test_dyck_labels_match_an_independent_recogniser(program):
    task = task_of("rasp", program=program, n_train=None)
    rng = np.random.default_rng(0)
    labels = Counter()
    for _ in range(300):
        xs = task.sample_input(rng)
        for t, label in enumerate(program_labels(program, xs), start=1):
            rest = _reduce("".join(xs[:t]))
            expected = "T" if rest == "" else ("P" if not set(rest) & set(")}") else "F")
            assert label == expected
            labels[label] += 1
    assert min(labels[x] for x in "PTF") > 100  # the sampler makes every label


def test_rasp_programs_by_independent_properties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        xs = list(rng.choice(list("abcdef"), size=int(rng.integers(1, 8))))
        assert program_labels("reverse", program_labels("reverse", xs)) == xs
        assert program_labels("sort", xs) == sorted(xs) and Counter(program_labels("sort", xs)) == Counter(xs)
        hist = [int(h) for h in program_labels("hist", xs)]
        assert all(h == xs.count(x) for h, x in zip(hist, xs))
        dh = [int(h) for h in program_labels("double_hist", xs)]
        assert all(d == len({y for y in set(xs) if xs.count(y) == xs.count(x)}) for d, x in zip(dh, xs))
        mf = [y for y in program_labels("most_freq", xs) if y is not None]
        assert sorted(mf) == sorted(set(xs)) and [xs.count(y) for y in mf] == sorted(
            (xs.count(y) for y in mf), reverse=True
        )


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_rasp_program_has_the_published_setting_and_its_oracle_scores_100(program):
    task = task_of("rasp", program=program, n_train=200)
    symbols = {
        "reverse": 5,
        "sort": 5,
        "hist": 6,
        "double_hist": 6,
        "most_freq": 6,
        "dyck1": 2,
        "dyck2": 4,
        "induction": 10,
    }
    assert len(task.inputs) == symbols[program]
    prompts = task.eval_prompts(64, seed=0)
    assert not {ex.key for ex in task.eval_examples(64, 0)} & task.train_keys()
    m = token_metrics(make_learner("oracle", task=task).predict(prompts), prompts)
    assert m["accuracy"][prompts.scored].min() == 1 and prompts.scored.any()
    lengths = [len(ex.key) for ex in task.eval_examples(64, 0)]
    lo, hi = {"reverse": (1, 6), "sort": (1, 6), "dyck1": (16, 16), "dyck2": (16, 16), "induction": (9, 9)}.get(
        program, (1, 7)
    )
    assert lo <= min(lengths) and max(lengths) <= hi
    # the labels are what the program says, at the answer slots (or the input positions)
    ex = task.eval_examples(1, 0)[0]
    labels = [task.vocab.symbols[int(y)] for y, s in zip(ex.targets, ex.scored) if s]
    assert labels == [y for y in program_labels(program, list(ex.key)) if y is not None]


# ---------------------------------------------------------------------------------------------- MQAR


def test_mqar_prompts_follow_zoology():
    task = task_of("mqar", seq_len=64, n_pairs=8, vocab_size=128, n_train=None)
    rng = np.random.default_rng(0)
    gaps = Counter()
    for _ in range(400):
        ex = task.draw(rng)
        seq, tg = ex.sequence, ex.targets
        keys, values = seq[0:16:2], seq[1:16:2]
        assert len(set(keys)) == 8 and len(set(values)) == 8
        assert (1 <= keys).all() and (keys < 64).all() and (64 <= values).all() and (values < 128).all()
        where = np.flatnonzero(ex.scored)
        assert len(where) == 8 and ((where - 16) % 2 == 0).all()
        assert sorted(seq[where]) == sorted(keys)  # every key queried once
        assert all(tg[q] == values[list(keys).index(seq[q])] for q in where)  # labelled with its value
        gaps.update(((where - 16) // 2).tolist())
    # gaps: without replacement from p(g) ~ a g^(a-1); the first gap is the likeliest, the law's tail is long
    space = 24
    p = 0.01 * np.arange(1, space + 1) ** (0.01 - 1)
    p /= p.sum()
    freq = np.array([gaps[g] for g in range(space)]) / 400
    assert freq[0] > freq[5] > freq[20] and abs(freq.sum() - 8) < 1e-9
    assert freq[0] == pytest.approx(1 - (1 - p[0]) ** 8, abs=0.12)  # at most once per prompt


def test_mqar_oracle_is_perfect_and_queries_are_the_only_labels():
    task = task_of("mqar", seq_len=64, n_pairs=8, vocab_size=128, n_train=100)
    prompts = task.eval_prompts(32, seed=0)
    assert int(prompts.scored.sum()) == 32 * 8
    m = token_metrics(make_learner("oracle", task=task).predict(prompts), prompts)
    assert m["accuracy"][prompts.scored].min() == 1
    fill = task_of("mqar", seq_len=64, n_pairs=8, vocab_size=128, random_non_queries=False).draw(
        np.random.default_rng(0)
    )
    rest = np.ones(64, dtype=bool)
    rest[:16] = False
    rest[fill.scored] = False
    assert (fill.sequence[rest] == 0).all()


LM_FAMILIES = [name for name, cls in MODELS.items() if cls.read_in]


@pytest.mark.parametrize("family", LM_FAMILIES)
def test_every_family_decodes_its_own_greedy_answer(family, quick_lm):
    """Greedy decoding of any family writes, at each step, the argmax of the model run on everything so far."""
    task = task_of("arithmetic", n_train=200, format="plain")
    model = quick_lm(family, task).eval()
    prompts = [task.generation_prompt(ex) for ex in task.eval_examples(4, seed=0)]
    out = generate(model, prompts, 5)
    for p, new in zip(prompts, out):
        assert len(new) == 5
        with torch.no_grad():
            logits = model(torch.tensor([p + new[:-1]]))[0]
        assert logits[len(p) - 1 :].argmax(-1).tolist() == new


@pytest.mark.slow
def test_a_recipe_fitted_to_one_program_refits_its_positions_to_another(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iclab",
            "train",
            "--recipe",
            "friedman2023_rasp",
            "--set",
            "task.program=dyck1",
            "--set",
            "train.steps=2",
            "--set",
            "eval.n_prompts=8",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "n_positions: 17" in (out / "config.yaml").read_text()  # <s> and 16 brackets (sort needs 14)


def test_attention_with_token_shift_is_causal_and_keys_come_from_the_previous_token():
    task = task_of("mqar", seq_len=32, n_pairs=4, vocab_size=64)
    cfg = MODELS["transformer"](n_layer=1, n_embd=16, n_head=2, token_shift=True, n_positions=32)
    cfg.validate()
    torch.manual_seed(0)
    model = build_for_task(cfg, task).eval()
    prompts = task.eval_prompts(2, seed=0)
    with torch.no_grad():
        logits = model(prompts.tokens)
        changed = prompts.tokens.clone()
        changed[:, 20:] = 3
        assert torch.allclose(model(changed)[:, :20], logits[:, :20], atol=1e-6)
        keys = {}
        attn = model.backbone.blocks[0].attn
        handle = attn.hook_k.register_forward_hook(lambda m, i, o: keys.setdefault("k", o))
        model(prompts.tokens)
        handle.remove()
    assert keys["k"][:, :, 0].abs().max() == 0  # position 0 has no previous token
    with pytest.raises(ConfigError, match="^model.token_shift"):
        load_config(None, ["model.encoder=set", "model.token_shift=true"])


def test_primer_qkv_convolution_is_causal_and_holds_plain_and_token_shift_attention():
    """Primer's depthwise q/k/v convolution: causal; with its taps set to the current token it is the plain
    transformer, and with the keys' taps on the previous token it is the token-shift transformer."""
    task = task_of("mqar", seq_len=32, n_pairs=4, vocab_size=64)
    prompts = task.eval_prompts(3, seed=0)

    def built(**kw):
        cfg = MODELS["transformer"](n_layer=2, n_embd=16, n_head=2, n_positions=32, **kw)
        cfg.validate()
        torch.manual_seed(0)
        return build_for_task(cfg, task).eval()

    conv_model = built(qkv_conv=3)
    with torch.no_grad():
        logits = conv_model(prompts.tokens)
        changed = prompts.tokens.clone()
        changed[:, 20:] = 3
        assert torch.allclose(conv_model(changed)[:, :20], logits[:, :20], atol=1e-6)
        assert not torch.allclose(conv_model(changed)[:, 20:], logits[:, 20:], atol=1e-3)
        for kw, key_tap in [({}, 2), ({"token_shift": True}, 1)]:  # tap 2 = this token, tap 1 = the one before
            reference = built(**kw)
            conv_model.load_state_dict(reference.state_dict(), strict=False)  # every weight but the convolutions
            for block in conv_model.backbone.blocks:
                weight = block.attn.qkv_conv.weight  # (3D, 1, 3): q channels, then k, then v
                weight.zero_()
                weight[:, 0, 2] = 1
                weight[16:32, 0, 2] = 1.0 if key_tap == 2 else 0.0
                weight[16:32, 0, key_tap] = 1
                block.attn.qkv_conv.bias.zero_()
            torch.testing.assert_close(conv_model(prompts.tokens), reference(prompts.tokens), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="^model.qkv_conv"):
        load_config(None, ["model.encoder=set", "model.qkv_conv=3"])
    with pytest.raises(ConfigError, match="^model.qkv_conv"):
        load_config(None, ["model.qkv_conv=-1"])


@pytest.mark.parametrize(
    "args,field",
    [
        (["--recipe", "lee2023_arithmetic", "--set", "task.format=binary"], "task.format"),
        (["--recipe", "friedman2023_rasp", "--set", "task.n_symbols=0"], "task.n_symbols"),
        (["--recipe", "arora2023_mqar", "--set", "task.vocab_size=0"], "task.vocab_size"),
    ],
)
def test_bad_token_task_input_leaves_an_existing_run_untouched(tmp_path, args, field):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("kept\n")
    proc = subprocess.run(
        [sys.executable, "-m", "iclab", "train", *args, "--out", str(run), "--overwrite"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith(f"iclab: error: {field}:"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert [p.name for p in run.iterdir()] == ["config.yaml"] and (run / "config.yaml").read_text() == "kept\n"


@pytest.mark.parametrize(
    "task,overrides,field",
    [
        ("arithmetic", ["task.format=binary"], "task.format"),
        ("arithmetic", ["task.max_length=10"], "task.max_length"),  # numbers longer than the context
        ("arithmetic", ["model.n_positions=10"], "model.n_positions"),
        ("arithmetic", ["task.n_train=50"], "task.n_train"),
        ("arithmetic", ["task.n_digits=0"], "task.n_digits"),
        ("arithmetic", ["eval.temperature=-1"], "eval.temperature"),
        ("rasp", ["task.program=parity"], "task.program"),
        ("rasp", ["task.n_symbols=0"], "task.n_symbols"),  # an empty vocabulary
        ("rasp", ["task.program=dyck1", "task.n_symbols=3"], "task.n_symbols"),
        ("rasp", ["task.program=reverse", "task.n_train=12000"], "task.n_train"),
        ("rasp", ["task.min_length=5", "task.max_length=3"], "task.min_length"),
        ("mqar", ["task.vocab_size=0"], "task.vocab_size"),
        ("mqar", ["task.seq_len=63"], "task.seq_len"),
        ("mqar", ["task.n_pairs=20"], "task.n_pairs"),
        ("mqar", ["task.vocab_size=32"], "task.vocab_size"),
    ],
)
def test_token_task_config_mistakes_name_the_field(task, overrides, field):
    with pytest.raises(ConfigError, match=f"^{re.escape(field)}"):
        load_config(None, [f"task.name={task}", *overrides])
