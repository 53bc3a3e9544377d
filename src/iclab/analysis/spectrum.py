"""The spectrum of the function a network predicts in context (Panwar, Ahuja, Goyal 2023, "In-Context Learning
through the Bayesian Prism": the simplicity-bias figure).

For a task on a periodic one-dimensional domain (``Task.periodic_domain``: Fourier series, and mixtures of them on
one domain), each held-out prompt's first ``k`` examples are kept as the context and the network is queried at
``GRID`` evenly spaced points of one period: its predicted function. Its discrete Fourier transform gives the
amplitude at each frequency ``j`` (``j`` cycles per period: ``cos(j pi x / L)`` for half-period ``L``), averaged
over prompts, beside the same for the Bayes predictor (the task's first reference learner) and for the true function.
A network that prefers simple functions puts less amplitude on high frequencies than the Bayes predictor when the
context cannot pin them down.

The instrument ``spectrum`` writes ``spectrum.csv`` (k, frequency, mean amplitude of the model, the Bayes predictor
and the truth) and ``spectrum.png`` (one panel per context size).
"""

from __future__ import annotations

from pathlib import Path

import torch

from iclab.analysis.instruments import Context, Figure, Inapplicable, Note, Result, instrument

GRID = 64  # query points per period: frequencies up to 32 cycles are resolved
PROMPTS = 128  # held-out prompts averaged


def _unsupported(task) -> str | None:
    if getattr(task, "periodic_domain", None) is None:
        return "it needs a task on a periodic one-dimensional domain (fourier_series)"
    return None


def amplitudes(values: torch.Tensor) -> torch.Tensor:
    """The amplitude of each frequency ``0 .. GRID / 2`` of functions sampled at ``GRID`` evenly spaced points of one
    period, ``(B, GRID) -> (B, GRID / 2 + 1)``: ``|c_0|`` for the mean, ``2 |c_j|`` for the others (the amplitude of
    ``a cos + b sin`` is ``sqrt(a^2 + b^2)``)."""
    c = torch.fft.rfft(values.double(), dim=-1) / values.shape[-1]
    amp = c.abs()
    amp[..., 1:] *= 2
    if values.shape[-1] % 2 == 0:
        amp[..., -1] /= 2  # the Nyquist frequency appears once
    return amp


def predicted_functions(predict, xs: torch.Tensor, ys: torch.Tensor, k: int, grid: torch.Tensor) -> torch.Tensor:
    """``predict(xs, ys) -> (B, N)`` queried at every ``grid`` point after the first ``k`` examples of each prompt:
    ``(B, G)``."""
    b, g = xs.shape[0], grid.shape[0]
    context_x = xs[:, :k].repeat_interleave(g, 0)  # (B * G, k, 1)
    context_y = ys[:, :k].repeat_interleave(g, 0)
    query = grid.to(xs).repeat(b).view(b * g, 1, 1)
    out = predict(torch.cat([context_x, query], 1), torch.cat([context_y, torch.zeros_like(context_y[:, :1])], 1))
    return out[:, -1].view(b, g)


def _section(folder: Path, d: int) -> list:
    if not (folder / "spectrum.png").is_file():
        return []
    return [
        Figure(
            "Spectrum of the predicted function (Panwar et al. 2023): mean amplitude per frequency",
            folder / "spectrum.png",
        ),
        Note(
            "Each panel keeps the first k examples of held-out prompts as the context and queries the network, the "
            "Bayes predictor and the true function on a dense grid over one period; amplitudes are averaged over "
            "prompts. Amplitude above the task's highest frequency is error; less than the Bayes predictor's at low "
            "k means a preference for simpler (smoother) functions."
        ),
    ]


@instrument("spectrum", section=_section, task_unsupported=_unsupported)
def spectrum(ctx: Context) -> Result:
    """Mean Fourier amplitude per frequency of the model's in-context function, the Bayes predictor's, the truth's."""
    from iclab.types import Prompts

    reason = _unsupported(ctx.task)
    if reason is not None:
        raise Inapplicable(reason)
    low, high = ctx.task.periodic_domain
    if not ctx.refs:
        raise Inapplicable("it compares with the task's Bayes predictor: keep its reference learners")
    bayes = ctx.refs[0]
    sub = ctx.prompts[: min(ctx.prompts.batch_size, PROMPTS)]
    grid = low + (high - low) * torch.arange(GRID, dtype=torch.float64) / GRID
    n = sub.xs.shape[1]
    ks = sorted({k for k in (1, 2, n // 4, n // 2, n - 1) if 1 <= k <= n - 1})
    device = next(ctx.model.parameters()).device
    ctx.log(f"spectrum: {len(ks)} context sizes x {GRID} grid points x {sub.batch_size} prompts ...")

    def model_predict(xs, ys):
        return ctx.model.predict(Prompts(xs.float().to(device), ys.float().to(device))).double().cpu()

    def bayes_predict(xs, ys):
        return bayes.predict(Prompts(xs.double(), ys.double(), {})).double()

    truth = ctx.task.label(grid.view(1, GRID, 1).expand(sub.batch_size, -1, -1).to(sub.xs), sub.info)
    truth_amp = amplitudes(truth).mean(0)
    rows = []
    for k in ks:
        model_amp = amplitudes(predicted_functions(model_predict, sub.xs, sub.ys, k, grid)).mean(0)
        bayes_amp = amplitudes(predicted_functions(bayes_predict, sub.xs, sub.ys, k, grid)).mean(0)
        for j in range(GRID // 2 + 1):
            rows.append(
                {
                    "k": k,
                    "frequency": j,
                    "model": round(float(model_amp[j]), 6),
                    bayes.label: round(float(bayes_amp[j]), 6),
                    "truth": round(float(truth_amp[j]), 6),
                }
            )
    max_freq = getattr(ctx.task, "max_frequency", None)
    return Result(
        tables={"spectrum.csv": rows},
        figures={"spectrum.png": lambda path: _plot(rows, bayes.label, max_freq, path)},
        summary={"spectrum_context_sizes": ks},
    )


def _plot(rows: list[dict], bayes: str, max_freq: int | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({r["k"] for r in rows})
    shown = (max_freq or 8) * 2 + 2  # frequencies drawn: twice the task's highest, to show any excess
    fig, axes = plt.subplots(1, len(ks), figsize=(3.2 * len(ks), 3.0), squeeze=False, sharey=True)
    for ax, k in zip(axes[0], ks):
        mine = [r for r in rows if r["k"] == k and r["frequency"] <= shown]
        freqs = [r["frequency"] for r in mine]
        ax.plot(freqs, [r["truth"] for r in mine], color="grey", ls=":", marker=".", label="true function")
        ax.plot(freqs, [r[bayes] for r in mine], color="C0", marker="s", ms=3, label=bayes)
        ax.plot(freqs, [r["model"] for r in mine], color="black", marker="o", ms=3, label="model")
        if max_freq is not None:
            ax.axvline(max_freq + 0.5, color="grey", lw=0.6)
        ax.set_title(f"k = {k} examples")
        ax.set_xlabel("frequency (cycles per period)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean amplitude")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
