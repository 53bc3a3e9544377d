"""Figures of the analysis instruments (PNG, matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path

from iclab.plotting import pyplot


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def plot_probes(rows: list[dict], path: Path) -> Path:
    """Held-out R^2 against depth, one panel per target; solid: trained network, dashed: random init."""
    plt = pyplot()
    rows = [r for r in rows if r["k"] == "all"]
    targets = list(dict.fromkeys(r["target"] for r in rows))
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for (network, probe), style in zip(
            sorted({(r["network"], r["probe"]) for r in rows if r["target"] == target}), ["-o", "-s", "--o", "--s"]
        ):
            sel = sorted(
                (r for r in rows if r["target"] == target and r["network"] == network and r["probe"] == probe),
                key=lambda r: r["depth"],
            )
            ls = "--" if network != "trained" else "-"
            ax.plot(
                [r["depth"] for r in sel],
                [r["r2_test"] for r in sel],
                ls,
                marker=style[-1],
                label=f"{probe}, {network}",
            )
        ax.set_title(f"probe target: {target}")
        ax.set_xlabel("depth (0 = embeddings)")
        ax.set_ylabel("held-out R^2")
        ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
        ax.axhline(0, color="#999", lw=0.6)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_alignment(rows: list[dict], path: Path, metric: str, ylabel: str) -> Path:
    """One line per reference learner: the metric between the model and it, against k."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for learner in dict.fromkeys(r["learner"] for r in rows):
        sel = [r for r in rows if r["learner"] == learner]
        ax.plot([r["k"] for r in sel], [r[metric] for r in sel], marker="o", ms=3, label=learner)
    ax.set_xlabel("in-context examples k")
    ax.set_ylabel(ylabel)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=7)
    ax.set_title(f"model vs reference learners: {metric}")
    return _save(fig, path)


def plot_weight_recovery(rows: list[dict], path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    ks = [r["k"] for r in rows]
    axes[0].plot(ks, [r["cosine_vs_true"] for r in rows], marker="o", ms=3, label="vs true w")
    if "cosine_vs_reference" in rows[0]:
        axes[0].plot(ks, [r["cosine_vs_reference"] for r in rows], marker="s", ms=3, label="vs reference")
    axes[0].set_ylabel("cosine of implied w")
    axes[1].plot(ks, [r["error_vs_true"] for r in rows], marker="o", ms=3, label="vs true w")
    if "error_vs_reference" in rows[0]:
        axes[1].plot(ks, [r["error_vs_reference"] for r in rows], marker="s", ms=3, label="vs reference")
    axes[1].set_ylabel("|w_hat - w|^2 / scale")
    for ax in axes:
        ax.set_xlabel("in-context examples k")
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_paste(result: dict, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, curve in result["curves"].items():
        ax.plot(range(len(curve)), curve, marker="o", ms=3, label=label)
    ax.set_xlabel("in-context examples k")
    ax.set_ylabel("error / scale")
    ax.set_title(f"pasting at layer {result['layer']} ({result['steps']} embedding steps)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_attention(patterns: dict, path: Path, title: str = "") -> Path:
    """One heatmap per layer and head (rows: layers, columns: heads)."""
    plt = pyplot()
    layers = list(patterns)
    heads = max(p.shape[0] for p in patterns.values())
    fig, axes = plt.subplots(len(layers), heads, figsize=(2.6 * heads, 2.6 * len(layers)), squeeze=False)
    for i, name in enumerate(layers):
        for h in range(heads):
            ax = axes[i][h]
            ax.set_xticks([])
            ax.set_yticks([])
            if h < patterns[name].shape[0]:
                ax.imshow(patterns[name][h].numpy(), cmap="viridis", aspect="auto")
                ax.set_title(f"{name.split('.attn')[0]} head {h}", fontsize=8)
            else:
                ax.axis("off")
            if h == 0:
                ax.set_ylabel("query token", fontsize=8)
            if i == len(layers) - 1:
                ax.set_xlabel("key token", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_lsa_products(rows: list[dict], path: Path) -> Path:
    """Heatmaps of ``W_K^T W_Q`` and ``W_P W_V`` per layer (rows), with the agreement in the titles."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 2, figsize=(7, 3.2 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j, key in enumerate(("kq", "pv")):
            m = r[key].numpy()
            lim = abs(m).max() or 1.0
            ax = axes[i][j]
            im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            agree = r[f"{key}_vs_gd"]
            name = "W_K^T W_Q" if key == "kq" else "W_P W_V"
            ax.set_title(f"layer {r['layer']}: {name}\ncos to GD construction {agree['cosine']:.3f}", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_ngram_heads(rows: list[dict], path: Path) -> Path:
    """Heatmaps (rows: layers, columns: heads) of the n-gram head share, one panel per n, chance in the title."""
    plt = pyplot()
    orders = sorted({int(r["n"]) for r in rows})
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    heads = max(int(r["head"]) for r in rows) + 1
    fig, axes = plt.subplots(
        1, len(orders), figsize=(1.2 + 1.1 * heads * len(orders), 0.9 + 0.45 * len(layers)), squeeze=False
    )
    for ax, n in zip(axes[0], orders):
        grid = [[float("nan")] * heads for _ in layers]
        chance = 0.0
        for r in rows:
            if int(r["n"]) == n:
                grid[layers.index(r["layer"])][int(r["head"])] = float(r["share"])
                chance = float(r["chance"])
        im = ax.imshow(grid, cmap="magma", vmin=0, vmax=1, aspect="auto")
        for i, row in enumerate(grid):
            for h, v in enumerate(row):
                if v == v:
                    ax.text(
                        h, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black"
                    )
        ax.set_title(f"n = {n} (chance {chance:.2f})", fontsize=9)
        ax.set_xticks(range(heads))
        ax.set_xlabel("head")
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels(layers if n == orders[0] else [], fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def plot_token_alignment(rows: list[dict], path: Path) -> Path:
    """TVD between the network and each reference learner against the number of strings seen."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for learner in dict.fromkeys(r["learner"] for r in rows):
        pts = sorted((r for r in rows if r["learner"] == learner and int(r["k"]) >= 0), key=lambda r: int(r["k"]))
        ax.plot([int(r["k"]) for r in pts], [float(r["tvd"]) for r in pts], "-o", ms=3, label=learner)
    ax.set_xlabel("strings seen in the prompt")
    ax.set_ylabel("TVD(network, learner)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)
