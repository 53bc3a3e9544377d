"""Evaluation by generation: a language model decodes the answer to each held-out prompt, and the task parses
and scores it (exact match for arithmetic). Used for token tasks with ``generates = True``.

:func:`generate` works for every model family (it only calls ``model(tokens)``): prompts are grouped by length so
that a batch needs no padding, and every step runs the model on the whole sequence so far (no key-value cache;
the answers here are at most a few hundred tokens). Greedy by default; ``temperature > 0`` samples, from the
``top_k`` most likely tokens when given, with a seeded generator, so sampled answers are reproducible too.
"""

from __future__ import annotations

from collections import defaultdict

import torch

GENERATION_COLUMNS = ("learner", "group", "value", "n", "exact_match")  # eval/generation.csv
GENERATION_TYPES = {"learner": str, "group": str, "n": int, "exact_match": float}


@torch.no_grad()
def generate(
    model,
    prompts: list[list[int]],
    max_new_tokens: int | list[int],
    *,
    done=None,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> list[list[int]]:
    """The tokens ``model`` appends to each prompt (prompt excluded).

    ``max_new_tokens`` is one budget or one per prompt; ``done(new_ids) -> bool`` ends a prompt's decoding early
    (its later tokens are cut). Model in eval mode, on its own device.
    """
    device = next(model.parameters()).device
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    by_length = defaultdict(list)
    for i, p in enumerate(prompts):
        by_length[len(p)].append(i)
    out: list[list[int] | None] = [None] * len(prompts)
    gen = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
    was_training = model.training
    model.eval()
    try:
        for length in sorted(by_length):
            idx = by_length[length]
            for start in range(0, len(idx), batch_size):
                part = idx[start : start + batch_size]
                x = torch.tensor([prompts[i] for i in part], dtype=torch.long, device=device)
                budget = max(budgets[i] for i in part)
                new = [[] for _ in part]
                finished = [budgets[i] <= 0 for i in part]
                for _ in range(budget):
                    if all(finished):
                        break
                    logits = model(x)[:, -1].float()
                    if temperature > 0:
                        logits = logits / temperature
                        if top_k is not None and top_k < logits.shape[-1]:
                            kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                            logits = logits.masked_fill(logits < kth, float("-inf"))
                        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
                    else:
                        nxt = logits.argmax(-1, keepdim=True)
                    x = torch.cat([x, nxt], 1)
                    for j, token in enumerate(nxt[:, 0].tolist()):
                        if finished[j]:
                            continue
                        new[j].append(token)
                        if len(new[j]) >= budgets[part[j]] or (done is not None and done(new[j])):
                            finished[j] = True
                for j, i in enumerate(part):
                    out[i] = new[j]
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def evaluate_generation(
    model,
    task,
    examples: list,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> tuple[list[dict], list[dict]]:
    """Decode every held-out example's answer with ``model`` and score it; also score the true continuations (the
    ``oracle`` rows: they check the parser). Returns ``(rows, per_example)``: rows of exact match overall and by
    each of the task's groups (digits, carries), and one record per example (prompt, generated text, parsed answer,
    correct)."""
    vocab = task.vocab
    prompts = [task.generation_prompt(ex) for ex in examples]
    budgets = [task.max_tokens + 1 - len(p) for p in prompts]
    done = task.answer_done_ids
    generated = generate(
        model, prompts, budgets, done=done, temperature=temperature, top_k=top_k, seed=seed, batch_size=batch_size
    )
    records = []
    for ex, p, g in zip(examples, prompts, generated):
        text = vocab.decode(g) if g else ""
        answer, expected = task.parse(text), task.expected(ex)
        truth = vocab.decode(ex.sequence[len(p) :])
        records.append(
            {
                **task.generation_groups(ex),
                "prompt": vocab.decode(p),
                "generated": text,
                "answer": answer,
                "expected": expected,
                "correct": answer == expected,
                "oracle_correct": task.parse(truth) == expected,
            }
        )
    rows = []
    for learner, key in (("model", "correct"), ("oracle", "oracle_correct")):
        rows.append(_row(learner, "all", "all", [r[key] for r in records]))
        for group in task.generation_groups(examples[0]) if examples else {}:
            for value in sorted({r[group] for r in records}):
                rows.append(_row(learner, group, value, [r[key] for r in records if r[group] == value]))
    return rows, records


def _row(learner: str, group: str, value, hits: list[bool]) -> dict:
    return {
        "learner": learner,
        "group": group,
        "value": value,
        "n": len(hits),
        "exact_match": sum(hits) / len(hits) if hits else float("nan"),
    }
