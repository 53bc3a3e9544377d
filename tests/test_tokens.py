"""The token side: REGBENCH prompts, the token learners against a per-prompt implementation of seq_icl's n-gram
definition, metrics, n-gram layers, every family as a language model, training and evaluation of a token run."""

from collections import Counter
from itertools import product

import numpy as np
import pytest
import torch

from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.kinds.tokens.metrics import token_metrics
from iclab.learners import LEARNERS, NGram, make_learner
from iclab.models import MODELS
from iclab.models.ngram_heads import ngram_matches
from iclab.tasks import TASKS, make_task
from iclab.tasks.rasp import PROGRAMS
from iclab.tasks.regbench import automaton_key, minimise, random_automaton
from iclab.types import IGNORE_INDEX

TOKEN_TASKS = [name for name, cls in TASKS.items() if cls.prompt_kind == "tokens"]
TOKEN_LEARNERS = [name for name, cls in LEARNERS.items() if cls.prompt_kind == "tokens"]
LM_FAMILIES = [name for name, cls in MODELS.items() if cls.read_in]


def small_regbench(**changes):
    cfg = TASKS["regbench"].Config(**{"n_train": 50, "max_length": 120, **changes})
    cfg.validate()
    return make_task(cfg)


# ---------------------------------------------------------------------------------------------- REGBENCH data


def _accepts(transitions, word):
    state = 0
    for a in word:
        if a not in transitions[state]:
            return False
        state = transitions[state][a]
    return True


def test_minimised_automata_accept_the_same_strings_and_relabelled_copies_share_a_key():
    cfg = TASKS["regbench"].Config()
    rng = np.random.default_rng(0)
    for _ in range(30):
        auto = random_automaton(rng, cfg)
        small = minimise(auto)
        assert len(small) <= len(auto)
        symbols = sorted({a for edges in auto for a in edges})
        for length in range(1, 5):
            for word in product(symbols, repeat=length):
                assert _accepts(auto, word) == _accepts(small, word)
        # rename the non-initial states: the canonical form does not change
        perm = [0, *rng.permutation(range(1, len(auto))).tolist()]
        renamed = [None] * len(auto)
        for s, edges in enumerate(auto):
            renamed[perm[s]] = {a: perm[t] for a, t in edges.items()}
        assert automaton_key(minimise(renamed)) == automaton_key(small)
        assert minimise(small) == small  # already minimal and canonical


def test_regbench_prompts_follow_the_paper_setting():
    task = make_task(TASKS["regbench"].Config(n_train=20))
    p = task.eval_prompts(60, seed=3)
    v = task.vocab
    assert (
        len(v) == 20
        and v.symbols[0] == "."
        and v.symbols[-1] == "|"
        and "".join(v.symbols[1:-1]) == "abcdefghijklmnopqr"
    )
    assert p.tokens.shape[1] <= 511
    for i in range(p.batch_size):
        text = v.decode(p.tokens[i])
        strings = text.split("|")
        full = len(text) + 1 < 512  # a prompt cut at 512 tokens may end mid-list
        assert len(strings) <= 19 and (not full or len(strings) >= 10)
        assert all(1 <= len(s) <= 49 for s in strings[:-1])
    scored = p.scored
    # separators and padding are never targets; every target is a valid next symbol
    assert not (p.targets[scored] == v.separator).any()
    assert p.info["valid"].gather(-1, p.targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)[scored].all()
    # 1-3 edges per state: 1-3 valid symbols at every scored position
    counts = p.info["valid"].sum(-1)[scored]
    assert counts.min() >= 1 and counts.max() <= 3


def test_training_and_held_out_automata_are_distinct():
    task = small_regbench(n_train=300)
    train = task.training_set()
    keys = [ex.key for ex in train]
    assert len(set(keys)) == len(keys) == 300
    held = task._draw_unique(np.random.default_rng(5), 300, task.train_keys())
    assert not {ex.key for ex in held} & set(keys)


# small settings of every token task (a task not named here takes its defaults)
SMALL = {
    "regbench": {"max_length": 60},
    "arithmetic": {"sampler": "uniform", "n_digits": 2},
    "mqar": {"seq_len": 32, "n_pairs": 4, "vocab_size": 64},
    "explanations": {"n_tasks": 20, "n_demos": 2},
}


def small_task(name, **changes):
    if name == "position_prediction":  # the ordered_set prompts, positions as targets
        base = {"name": "ordered_set", "n_train": changes.pop("n_train", 12)}
        cfg = TASKS[name].Config(base=base, **changes)
        cfg.validate()
        return make_task(cfg)
    cfg = TASKS[name].Config(**{"n_train": 12, **SMALL.get(name, {}), **changes})
    cfg.validate()
    return make_task(cfg)


@pytest.mark.parametrize("name", TOKEN_TASKS)
def test_a_training_batch_is_a_function_of_seed_and_step_and_each_epoch_sees_every_prompt_once(name):
    task = small_task(name)
    a, b = task.train_batch(4, seed=7, step=2), small_task(name).train_batch(4, seed=7, step=2)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.targets, b.targets)
    seen = [tuple(row[row != 0].tolist()) for s in range(3) for row in task.train_batch(4, 7, s).tokens]
    assert len(set(seen)) == 12  # steps 0-2 of batch 4 are exactly epoch 0
    assert not torch.equal(task.train_batch(4, 8, 0).tokens, task.train_batch(4, 7, 0).tokens)
    fresh = small_task(name, n_train=None)  # no fixed set: a fresh prompt per item, still a function of (seed, step)
    assert torch.equal(fresh.train_batch(4, 1, 5).tokens, small_task(name, n_train=None).train_batch(4, 1, 5).tokens)


@pytest.mark.parametrize("name", TOKEN_TASKS)
def test_held_out_prompts_are_fixed_and_every_relevant_learner_predicts_them(name):
    task = small_task(name)
    e1, e2 = task.eval_prompts(8, seed=0), small_task(name).eval_prompts(8, seed=0)
    assert torch.equal(e1.tokens, e2.tokens)
    classes = task.n_outputs  # the vocabulary (a pretext task's: positions)
    assert (e1.targets[e1.scored] >= 0).all() and e1.info["valid"].shape == (*e1.tokens.shape, classes)
    for spec in task.relevant_learners():
        out = make_learner(spec, task=task).predict(e1)
        assert out.shape == (*e1.tokens.shape, classes) and torch.isfinite(out).all(), spec


@pytest.mark.parametrize("name", TOKEN_TASKS)
def test_every_prompt_token_lies_in_the_input_vocabulary(name):
    """``input_vocab_size`` bounds every id a prompt holds (what a Transformer Program's token variable needs), and
    it counts exactly the pad and the symbols ``input_symbols`` names."""
    task = small_task(name)
    for batch in (task.train_batch(8, seed=3, step=0), task.eval_prompts(8, seed=0)):
        assert int(batch.tokens.max()) < task.input_vocab_size
    names = {task.vocab.symbols[task.vocab.pad], *task.input_symbols()}
    assert set(task.vocab.symbols[: task.input_vocab_size]) >= names


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_paper_rasp_labels_of_their_own_come_after_the_inputs(program):
    """On the paper's data the hist counts (and induction's ``?``) are label-only symbols: listed after every input,
    so the program's variables are as wide as the paper's (8 on the hist tasks, not 15)."""
    task = small_task("rasp", program=program, data="paper")
    batch = task.eval_prompts(64, seed=0)
    assert int(batch.tokens.max()) < task.input_vocab_size
    labels = set(batch.targets[batch.scored].tolist()) - set(range(task.input_vocab_size))
    if program in ("hist", "double_hist", "induction"):
        assert labels and task.input_vocab_size < task.vocab_size
    if program in ("hist", "double_hist"):
        assert task.input_vocab_size == 8 and task.vocab_size == 15


@pytest.mark.parametrize("name", TOKEN_TASKS)
def test_every_token_task_trains_evaluates_and_reports(name, tmp_path):
    from iclab.evaluate import evaluate_run
    from iclab.report import write_report
    from iclab.rundir import read_summary
    from iclab.training.loop import train

    small = [f"task.{k}={v}" for k, v in SMALL.get(name, {}).items()]
    if name == "position_prediction":  # ordered_set prompts; a network told no positions
        small = ["task.base={name: ordered_set, n_train: 12}", "model.positional=none"]
    else:
        small = ["task.n_train=12", *small]
    cfg = load_config(
        None,
        [
            f"task.name={name}",
            *small,
            "model.n_layer=1",
            "model.n_embd=16",
            "model.n_head=2",
            "train.steps=4",
            "train.batch_size=4",
            "train.device=cpu",
            "train.eval_every=2",
            "train.eval_prompts=4",
            "train.log_every=2",
            "eval.n_prompts=8",
        ],
    )
    assert train(cfg, tmp_path / "r", progress_bar=False).step == 4
    rows = evaluate_run(tmp_path / "r")
    task = make_task(cfg.task)
    labels = {"model", *[make_learner(s, task=task).label for s in task.relevant_learners()]}
    assert {r["learner"] for r in rows} == labels and {r["metric"] for r in rows} == {
        "accuracy",
        "tvd",
        "cross_entropy",
        "kl",
    }
    summary = read_summary(tmp_path / "r" / "eval" / "summary.csv")
    assert {r["learner"] for r in summary} == labels
    assert write_report(tmp_path / "r").is_file() and (tmp_path / "r" / "plots" / "curves_tokens.png").is_file()


# ---------------------------------------------------------------------------------------------- learners


def _counts(texts, big_n):
    counts = {n: Counter() for n in range(1, big_n + 1)}
    for text in texts:
        padded = "_" * (big_n - 1) + text
        for n in counts:
            for i in range(len(padded) - n + 1):
                counts[n][padded[i : i + n]] += 1
    return counts


def _backoff(prefix, chars, n, counts, vocab):
    out = []
    for ch in chars:
        if prefix + ch in counts[n]:
            out.append(
                counts[1][ch] / sum(counts[1].values()) if n == 1 else counts[n][prefix + ch] / counts[n - 1][prefix]
            )
        else:
            seen = sum(counts[n][prefix + o] / counts[n - 1][prefix] for o in vocab if prefix + o in counts[n])
            unseen = [o for o in vocab if prefix + o not in counts[n]]
            lower = _backoff(prefix[1:], unseen, n - 1, counts, vocab)
            out.append((1 - seen) * lower[unseen.index(ch)] / sum(lower))
    return out


def ngram_per_prompt(text, big_n, symbols):
    """seq_icl's in-context n-gram, written out plainly: re-count everything for every prefix."""
    rows = []
    for t in range(1, len(text) + 1):
        texts = text[:t].split("|")
        counts = _counts(texts, big_n)
        vocab = sorted(set("".join(texts)))
        if big_n == 1:
            total = sum(counts[1][c] for c in vocab)
            probs = [counts[1][c] / total for c in vocab]
        else:
            cur = texts[-1][-(big_n - 1) :]
            probs = _backoff("_" * (big_n - 1 - len(cur)) + cur, vocab, big_n, counts, vocab)
        row = np.zeros(len(symbols))
        for c, pr in zip(vocab, probs):
            row[symbols.index(c)] = pr
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ngram_learner_equals_the_per_prompt_definition(n):
    task = small_regbench()
    p = task.eval_prompts(4, seed=11)
    probs = make_learner(f"ngram(n={n})", task=task).predict(p)
    for i in range(p.batch_size):
        text = p.vocab.decode(p.tokens[i])
        expected = ngram_per_prompt(text, n, list(p.vocab.symbols))
        expected /= expected.sum(1, keepdims=True)  # seq_icl normalises before its distances
        assert np.abs(probs[i, : len(text)].numpy() - expected).max() < 1e-9
    assert torch.allclose(probs[p.scored].sum(-1), torch.ones(int(p.scored.sum()), dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_ngram_learner_is_the_same_whatever_its_chunks(n):
    """Chunks of 3 prompts (the last one shorter) reuse one set of scratch tensors: bit for bit the one-chunk result."""
    task = small_regbench()
    p = task.eval_prompts(8, seed=5)
    assert torch.equal(NGram(n, chunk=3).predict(p), NGram(n, chunk=128).predict(p))


def test_unigram_is_the_order_one_ngram():
    task = small_regbench()
    p = task.eval_prompts(5, seed=2)
    assert torch.equal(make_learner("unigram").predict(p), make_learner("ngram(n=1)").predict(p))


@pytest.fixture(scope="module")
def held_out():
    """500 held-out REGBENCH prompts in the paper's setting."""
    task = make_task(TASKS["regbench"].Config())
    return task, task.eval_prompts(500, seed=1234)


def test_the_oracle_is_perfect_on_held_out_prompts(held_out):
    task, p = held_out
    m = token_metrics(make_learner("automaton", task=task).predict(p), p)
    assert m["accuracy"][p.scored].min() == 1.0 and m["tvd"][p.scored].abs().max() < 1e-12


@pytest.mark.parametrize("n,reference", [(2, 0.83), (3, 0.93)])
def test_ngram_accuracy_matches_the_reference_codes(held_out, n, reference):
    """seq_icl's own n-gram code scores about 0.83 (2-gram) and 0.93 (3-gram) greedy accuracy on its data."""
    task, p = held_out
    m = token_metrics(make_learner(f"ngram(n={n})", task=task).predict(p), p)
    assert abs(m["accuracy"][p.scored].mean().item() - reference) < 0.02


@pytest.mark.parametrize("name", [n for n in TOKEN_LEARNERS if LEARNERS[n].predicts_what == "next tokens"])
def test_every_token_learner_uses_the_prefix_only(name):
    """(The position learners read the whole prompt, as position prediction does: tests/test_positions.py.)"""
    task = small_regbench() if name != "counting" else small_task("explanations")  # (counting reads explanations)
    p = task.eval_prompts(3, seed=4)
    learner = make_learner(name, task=task)
    before = learner.predict(p)
    changed = p[0:3]
    changed.tokens = p.tokens.clone()
    changed.tokens[:, 40:] = 1
    after = learner.predict(changed) if name != "automaton" else before  # the oracle reads info, not tokens
    assert torch.equal(before[:, :40], after[:, :40])
    assert torch.allclose(before[p.scored].sum(-1), torch.ones(int(p.scored.sum()), dtype=torch.float64))


def test_token_metrics_by_hand():
    task = small_regbench()
    p = task.eval_prompts(1, seed=0)[0:1]
    p.tokens, p.targets = p.tokens[:, :2], torch.tensor([[2, IGNORE_INDEX]])
    valid = torch.zeros(1, 2, 20, dtype=torch.bool)
    valid[0, 0, [2, 3]] = True
    p.info = {"valid": valid, "string_index": torch.zeros(1, 2, dtype=torch.long)}
    probs = torch.zeros(1, 2, 20, dtype=torch.float64)
    probs[0, :, 3], probs[0, :, 5] = 0.6, 0.4
    m = token_metrics(probs, p)
    assert m["accuracy"][0, 0] == 1.0 and torch.isnan(m["accuracy"][0, 1])
    assert m["tvd"][0, 0].item() == pytest.approx(0.5 * (0.5 + 0.1 + 0.4))
    assert m["cross_entropy"][0, 0].item() == pytest.approx(-np.log(1e-7))
    assert m["kl"][0, 0].item() == pytest.approx(0.5 * np.log(0.5 / 1e-7) + 0.5 * np.log(0.5 / 0.6))


# ---------------------------------------------------------------------------------------------- models


def test_ngram_matches_against_a_loop():
    ids = torch.randint(1, 4, (2, 30))
    for n in (1, 2, 3):
        got = ngram_matches(ids, n)
        for b in range(2):
            for i in range(30):
                for j in range(30):
                    want = (
                        j < i
                        and j - n >= 0
                        and i - n + 1 >= 0
                        and all(ids[b, j - 1 - k] == ids[b, i - k] for k in range(n))
                    )
                    assert bool(got[b, i, j]) == want, (n, b, i, j)


@pytest.mark.parametrize(
    "family, ngram",
    [(f, n) for f in LM_FAMILIES for n in ([], [1, 2]) if not n or MODELS[f].ngram_layers],
)
def test_every_family_is_a_causal_language_model(family, ngram, quick_lm):
    task = small_regbench()
    model = quick_lm(family, task, ngram_heads=ngram).eval()  # eval: a Transformer Program samples in training
    p = task.eval_prompts(2, seed=1)
    logits = model(p.tokens)
    assert logits.shape == (2, p.length, 20)
    changed = p.tokens.clone()
    changed[:, 30:] = 5
    assert torch.allclose(model(changed)[:, :30], logits[:, :30], atol=1e-5)
    assert sum(type(b).__name__ == "NgramBlock" for b in model.backbone.blocks) == len(ngram)


def test_rope_attention_depends_on_offsets_only():
    from iclab.models.transformer import rotary

    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    dots = [(rotary(q, torch.tensor([p + 3])) * rotary(k, torch.tensor([p]))).sum() for p in (0, 5, 17)]
    assert torch.allclose(torch.stack(dots), dots[0].expand(3), atol=1e-5)


@pytest.mark.slow
def test_a_language_model_with_an_ngram_head_learns_in_context_bigrams(tmp_path):
    """A tiny transformer with a 1-gram head, trained for 150 steps, beats the in-context unigram by far on held-out
    automata (the head hands it the symbols that followed the current one)."""
    from iclab.evaluate import evaluate_run
    from iclab.rundir import read_summary
    from iclab.training.loop import train

    cfg = load_config(
        None,
        [
            "task.name=regbench",
            "task.n_train=400",
            "task.max_length=160",
            "model.n_layer=2",
            "model.ngram_heads=[1]",
            "model.n_embd=32",
            "model.n_head=2",
            "train.steps=150",
            "train.batch_size=16",
            "train.lr=3e-3",
            "train.warmup_steps=20",
            "train.device=cpu",
            "train.threads=1",
            "train.eval_every=0",
            "eval.n_prompts=64",
            "eval.learners=[unigram, ngram(n=2)]",
        ],
    )
    train(cfg, tmp_path / "r", progress_bar=False)
    evaluate_run(tmp_path / "r", plot=False)
    acc = {
        r["learner"]: r["mean"]
        for r in read_summary(tmp_path / "r" / "eval" / "summary.csv")
        if r["metric"] == "accuracy"
    }
    assert acc["model"] > acc["unigram"] + 0.1


def test_token_resume_is_bitwise_exact(tmp_path):
    from iclab.training.loop import train

    cfg = load_config(
        None,
        [
            "task.name=regbench",
            "task.n_train=10",
            "task.max_length=60",
            "model.n_layer=1",
            "model.n_embd=16",
            "model.n_head=2",
            "model.ngram_heads=[2]",
            "train.steps=12",
            "train.batch_size=4",
            "train.checkpoint_every=5",
            "train.device=cpu",
            "train.threads=1",
            "train.eval_every=0",
        ],
    )
    train(cfg, tmp_path / "a", progress_bar=False)
    train(cfg, tmp_path / "b", stop_after=6, progress_bar=False)
    train(cfg, tmp_path / "b", resume=True, progress_bar=False)
    a = torch.load(tmp_path / "a/checkpoints/step-00000012/model.pt")
    b = torch.load(tmp_path / "b/checkpoints/step-00000012/model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "overrides,field",
    [
        (["model.name=linear_self_attention", "model.encoder=stacked"], "model.name"),
        (["model.n_positions=100"], "model.n_positions"),
        (["task.n_train=0"], "task.n_train"),
        (["eval.learners=[least_squares]"], "eval.learners[0]"),
        (["eval.shifts=[noisy_y]"], "eval.shifts[0]"),
        (["train.loss_on=last"], "train.loss_on"),
    ],
)
def test_token_config_mistakes_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=f"^{field.replace('[', '.').replace(']', '.')}"):
        load_config(None, ["task.name=regbench", *overrides])


def test_ngram_heads_need_a_token_task():
    with pytest.raises(ConfigError, match="^model.ngram_heads: n-gram layers read token ids"):
        load_config(None, ["model.ngram_heads=[1]"])


def test_a_token_learner_on_a_regression_task_is_refused():
    with pytest.raises(ConfigError, match="predicts next tokens"):
        load_config(None, ["eval.learners=[ngram]"])
