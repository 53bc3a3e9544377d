"""REGBENCH (Akyürek et al. 2024) at CPU scale: the n-gram learners' speed, and every family trained on the same
training automata (issue 12).

    python benchmarks/regbench.py ngram [--prompts 1000]
    python benchmarks/regbench.py ssm
    python benchmarks/regbench.py families [--steps 2000] [--n-train 10000] [--out docs/regbench_families.png] [--reuse]
                                           [--only NAME ...]

``ngram``: the vectorised in-context n-gram learners (orders 2-4) against two per-prompt Python loops on the
same held-out prompts: one that keeps running counts (the efficient way to write seq_icl's definition), and
seq_icl's own procedure, which re-counts every n-gram for every prefix (timed on ``--recount`` prompts and
scaled to 1000); prints seconds per 1000 prompts and the ratios, and checks all three agree.

``ssm``: Mamba's selective scan at REGBENCH's shapes (batch 32, 2x64 network: 128 channels, 16 states) and at a
regression prompt's, forward and backward, in its two forms: the parallel prefix scan over (B, T, E, N)
tensors and the token-by-token loop that forms exp(Delta A) and y inside the step; checks they agree.

``families``: the CPU recipe ``akyurek2024_regbench`` (task and training settings) with each family in turn:
the GPT-2 transformer, the same with Primer's q/k/v convolution (the recipe's model), each with and without
n-gram heads, LSTM, delta-rule memory, Mamba, a hybrid (one attention and one delta-rule layer); all on the same
``--n-train``
training automata, each trained ``--steps`` steps with 2 threads, evaluated on the same 500 held-out automata.
Prints training tokens/s, greedy accuracy and TVD per family next to the in-context 2-gram and 3-gram learners,
and plots accuracy and TVD against strings seen.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from _common import SMOKE, SMOKE_OVERRIDES, scratch, small, train_fresh
from iclab.config import apply_overrides, run_config_from_dict, to_dict
from iclab.learners import make_learner
from iclab.tasks import TASKS, make_task

# family -> overrides of the CPU recipe (whose model is the transformer with Primer's q/k/v convolution)
FAMILIES = {
    "transformer": ["model.name=transformer", "model.qkv_conv=0"],
    "transformer + n-gram heads": ["model.name=transformer", "model.qkv_conv=0", "model.ngram_heads=[1,2,3]"],
    "transformer, qkv conv": ["model.name=transformer", "model.qkv_conv=3"],
    "transformer, qkv conv + n-gram heads": ["model.name=transformer", "model.qkv_conv=3", "model.ngram_heads=[1,2,3]"],
    "LSTM": ["model.name=rnn", "model.cell=lstm", "model.n_layer=1", "model.n_embd=128"],
    "memory (delta rule)": ["model.name=memory", "model.rule=delta", "model.n_layer=2", "model.n_head=2"],
    "mamba": ["model.name=mamba", "model.n_layer=2", "model.n_embd=64"],
    # one attention layer, then one delta-rule layer (issue 27's hybrid row)
    "hybrid (attention, delta memory)": [
        "model.name=hybrid",
        "model.blocks=[attention, mlp, 'memory(rule=delta)', mlp]",
        "model.n_layer=1",
        "model.n_embd=64",
    ],
}


def ngram_loop(text: str, big_n: int, symbols: list[str]) -> np.ndarray:
    """seq_icl's in-context n-gram with backoff for one prompt, position by position, with running counts."""
    counts = {n: Counter() for n in range(1, big_n + 1)}
    vocab: set[str] = set()
    padded = "_" * (big_n - 1)
    rows = np.zeros((len(text), len(symbols)))
    index = {c: i for i, c in enumerate(symbols)}

    def add_text_start():
        for n in counts:  # the all-pad n-grams of a new string's padding
            counts[n]["_" * n] += big_n - n

    def dist(prefix: str, n: int) -> dict[str, float]:  # the backoff distribution over the symbols seen so far
        if n == 1:
            total = sum(counts[1][c] for c in vocab)
            return {c: counts[1][c] / total for c in vocab}
        seen = {c: counts[n][prefix + c] / counts[n - 1][prefix] for c in vocab if counts[n][prefix + c]}
        if len(seen) == len(vocab):
            return seen
        lower = dist(prefix[1:], n - 1)
        rest = sum(p for c, p in lower.items() if c not in seen)
        beta = 1 - sum(seen.values())
        return {c: seen[c] if c in seen else beta * lower[c] / rest for c in vocab}

    add_text_start()
    for t, ch in enumerate(text):
        if ch == "|":
            padded = "_" * (big_n - 1)
            add_text_start()
        else:
            padded += ch
            vocab.add(ch)
            for n in counts:
                counts[n][padded[-n:]] += 1
        values = dist(padded[len(padded) - (big_n - 1) :] if big_n > 1 else "", big_n)
        total = sum(values.values())
        for c, v in values.items():
            rows[t, index[c]] = v / total
    return rows


def ngram_recount(text: str, big_n: int, symbols: list[str]) -> np.ndarray:
    """seq_icl's own procedure (``predict_with_n_gram_back_off``): for every prefix, split it into strings,
    count every n-gram again, and back off symbol by symbol."""
    rows = np.zeros((len(text), len(symbols)))
    for t in range(1, len(text) + 1):
        texts = text[:t].split("|")
        counts = {n: Counter() for n in range(1, big_n + 1)}
        for s in texts:
            padded = "_" * (big_n - 1) + s
            for n in counts:
                for i in range(len(padded) - n + 1):
                    counts[n][padded[i : i + n]] += 1
        vocab = sorted(set("".join(texts)))

        def probs(prefix, chars, n):
            out = []
            for ch in chars:
                if n == 1:
                    out.append(counts[1][ch] / sum(counts[1].values()))
                elif counts[n][prefix + ch]:
                    out.append(counts[n][prefix + ch] / counts[n - 1][prefix])
                else:
                    seen = sum(counts[n][prefix + o] / counts[n - 1][prefix] for o in vocab if counts[n][prefix + o])
                    unseen = [o for o in vocab if not counts[n][prefix + o]]
                    lower = probs(prefix[1:], unseen, n - 1)
                    out.append((1 - seen) * lower[unseen.index(ch)] / sum(lower))
            return out

        cur = texts[-1][-(big_n - 1) :] if big_n > 1 else ""
        values = probs("_" * (big_n - 1 - len(cur)) + cur, vocab, big_n)
        for c, v in zip(vocab, values):
            rows[t - 1, symbols.index(c)] = v / sum(values)
    return rows


def bench_ngram(n_prompts: int, n_recount: int) -> None:
    torch.set_num_threads(2)
    task = make_task(TASKS["regbench"].Config())
    prompts = task.eval_prompts(n_prompts, seed=1234)
    texts = [prompts.vocab.decode(row) for row in prompts.tokens]
    symbols = list(prompts.vocab.symbols)
    tokens = int((prompts.tokens != 0).sum())
    print(f"{n_prompts} held-out REGBENCH prompts, {tokens / n_prompts:.0f} tokens each on average, 2 threads")
    print(
        "seconds per 1000 prompts (the vectorised learner: best of 3); the re-counting loop is timed on the "
        f"first {n_recount} prompts and scaled"
    )
    print(
        f"{'learner':<12}{'vectorised':>11}{'running-count loop':>20}{'ratio':>7}{'re-counting loop':>18}{'ratio':>8}"
        f"{'max |diff|':>12}"
    )
    per = 1000 / n_prompts
    for n in (2, 3, 4):
        learner = make_learner(f"ngram(n={n})")
        t_fast = float("inf")
        for _ in range(3):  # best of three: a fraction of a second is at the mercy of a shared machine
            t0 = time.perf_counter()
            fast = learner.predict(prompts)
            t_fast = min(t_fast, (time.perf_counter() - t0) * per)
        t0 = time.perf_counter()
        slow = [ngram_loop(text, n, symbols) for text in texts]
        t_slow = (time.perf_counter() - t0) * per
        t0 = time.perf_counter()
        recount = [ngram_recount(text, n, symbols) for text in texts[:n_recount]]
        t_recount = (time.perf_counter() - t0) * 1000 / n_recount
        diff = max(
            float(np.abs(fast[i, : len(s)].numpy() - s).max()) for rows in (slow, recount) for i, s in enumerate(rows)
        )
        print(
            f"{f'ngram(n={n})':<12}{t_fast:>11.2f}{t_slow:>20.1f}{t_slow / t_fast:>6.0f}x{t_recount:>18.0f}"
            f"{t_recount / t_fast:>7.0f}x{diff:>12.1e}"
        )


def bench_ssm(repeats: int) -> None:
    from iclab.models.ssm import selective_scan, selective_ssm_loop

    torch.set_num_threads(2)
    print(f"Mamba's selective scan, forward + backward (best of {repeats}), 2 threads; channels E = 128, states N = 16")
    print("| shape (B, T) | parallel prefix scan | token-by-token loop | ratio | max |diff| |\n|---|---|---|---|---|")
    shapes = [(32, 256), (64, 81), (64, 41)] if not SMOKE else [(2, 9)]
    for b, t in shapes:
        g = torch.Generator().manual_seed(0)
        e, n = 128, 16
        delta = (torch.rand(b, t, e, generator=g) * 0.1).requires_grad_()
        u, bmat, cmat = (torch.randn(b, t, d, generator=g).requires_grad_() for d in (e, n, n))
        A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(e, 1)

        def scan():
            h = selective_scan(torch.exp(delta.unsqueeze(-1) * A), (delta * u).unsqueeze(-1) * bmat.unsqueeze(2))
            return (h * cmat.unsqueeze(2)).sum(-1)

        def loop():
            return selective_ssm_loop(delta, A, delta * u, bmat, cmat)[0]

        seconds, outs = {}, {}
        for name, f in (("scan", scan), ("loop", loop)):
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                y = f()
                y.square().sum().backward()
                best = min(best, time.perf_counter() - t0)
            seconds[name], outs[name] = best, y.detach()
            delta.grad = u.grad = bmat.grad = cmat.grad = None
        diff = float((outs["scan"] - outs["loop"]).abs().max())
        print(
            f"| ({b}, {t}) | {seconds['scan']:.3f} s | {seconds['loop']:.3f} s | "
            f"{seconds['scan'] / seconds['loop']:.0f}x | {diff:.0e} |"
        )


def bench_families(steps: int, n_train: int, out: Path, reuse: bool = False, only: list[str] | None = None) -> None:
    from iclab.evaluate import evaluate_run
    from iclab.kinds.tokens.figures import plot_token_curves
    from iclab.recipes import akyurek2024_regbench
    from iclab.rundir import read_metrics, read_summary

    base = to_dict(akyurek2024_regbench())
    overrides = [
        f"train.steps={steps}",
        f"task.n_train={n_train}",
        "eval.n_prompts=500",
        "train.threads=2",
        *SMOKE_OVERRIDES,
    ]
    if SMOKE:
        overrides += ["task.max_length=60", "task.n_train=20"]
    results, curves = {}, []
    for name, extra in FAMILIES.items():
        if only and name not in only:
            continue
        data = apply_overrides(base, [*overrides, *extra])
        cfg = run_config_from_dict(data)
        if name != "transformer" or only:  # the recipe's ngram learners once, with the transformer
            cfg.eval.learners = ["automaton"]
        folder = Path(scratch("iclab-regbench")) / name.replace(" ", "_").replace("+", "plus")
        done = folder / "done.json"
        if reuse and done.is_file() and json.loads(done.read_text())["config"] == to_dict(cfg):
            seconds = json.loads(done.read_text())["seconds"]  # the same run, trained before: not again
        else:
            seconds = train_fresh(cfg, folder)
            done.write_text(json.dumps({"config": to_dict(cfg), "seconds": seconds}))
        rows = evaluate_run(folder, plot=False)
        summary = read_summary(folder / "eval" / "summary.csv")
        log = [r for r in read_metrics(folder) if "loss" in r]
        task = make_task(cfg.task)
        tokens = _tokens_seen(task, cfg.train.batch_size, cfg.train.seed, log[-1]["step"])
        by = {(r["learner"], r["metric"]): r["mean"] for r in summary}
        results[name] = {
            "seconds": seconds,
            "tokens_per_s": tokens / seconds,
            "steps": cfg.train.steps,
            "accuracy": by[("model", "accuracy")],
            "tvd": by[("model", "tvd")],
            "label": cfg.model.label(tokens=True) + cfg.model.ngram_label(),
        }
        curves += [{**r, "learner": results[name]["label"]} for r in rows if r["learner"] == "model"]
        if name == "transformer" and not only:
            for lab in ("ngram(n=2)", "ngram(n=3)"):
                results[lab] = {"accuracy": by[(lab, "accuracy")], "tvd": by[(lab, "tvd")]}
            curves += [r for r in rows if r["learner"] in ("ngram(n=2)", "ngram(n=3)")]
        print(f"{name}: {seconds:.0f} s", flush=True)
    print(
        f"\nREGBENCH, {cfg.task.n_train} training automata, batch {cfg.train.batch_size}, "
        f"{cfg.eval.n_prompts} held-out "
        f"automata, prompts of at most {cfg.task.max_length} tokens, 2 threads"
    )
    print("| model | params | steps | training tokens/s | accuracy | TVD |\n|---|---|---|---|---|---|")
    for name, r in results.items():
        speed = f"{r['tokens_per_s']:.0f}" if "tokens_per_s" in r else ""
        print(
            f"| {r.get('label', name)} | {_params(name, base, overrides)} | {r.get('steps', '')} | {speed} | "
            f"{r['accuracy']:.3f} | {r['tvd']:.3f} |"
        )
    if only:  # a figure of some families only never replaces the whole comparison's
        out = Path(scratch("iclab-regbench")) / "figure-only.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_token_curves(
        curves,
        out,
        metrics=("accuracy", "tvd"),
        title=f"REGBENCH at CPU scale: {n_train} training automata, {steps} steps each",
    )
    print(f"figure: {out}")


def _tokens_seen(task, batch_size: int, seed: int, steps: int) -> int:
    """Input tokens (not padding) in the training batches of steps 0 .. steps - 1."""
    return sum(int((task.train_batch(batch_size, seed, s).tokens != task.vocab.pad).sum()) for s in range(steps))


def _params(name: str, base: dict, overrides: list[str]) -> str:
    if name not in FAMILIES:
        return ""
    from iclab.kinds import build_for_task

    cfg = run_config_from_dict(apply_overrides(base, [*overrides, *FAMILIES[name]]))
    model = build_for_task(cfg.model, make_task(cfg.task))
    return f"{sum(p.numel() for p in model.parameters()) / 1e3:.0f}k"


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("ngram")
    a.add_argument("--prompts", type=int, default=1000)
    a.add_argument("--recount", type=int, default=10, help="prompts for the (slow) re-counting loop")
    sub.add_parser("ssm")
    b = sub.add_parser("families")
    b.add_argument("--steps", type=int, default=2000)
    b.add_argument("--n-train", type=int, default=10000)
    b.add_argument("--out", type=Path, default=Path("docs/regbench_families.png"))
    b.add_argument("--reuse", action="store_true", help="keep runs already trained with the same config")
    b.add_argument("--only", nargs="+", choices=sorted(FAMILIES), help="train these families only")
    args = p.parse_args()
    if args.what == "ngram":
        bench_ngram(small(args.prompts, 3), small(args.recount, 1))
    elif args.what == "ssm":
        bench_ssm(small(3, 1))
    else:
        bench_families(
            small(args.steps, 3),
            small(args.n_train, 20),
            Path(scratch("iclab-regbench")) / "figure.png" if SMOKE else args.out,
            args.reuse,
            args.only,
        )


if __name__ == "__main__":
    main()
