"""Figures (matplotlib, written to PNG files; no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def gold_scores_per_slot(panels: list[dict], path: str | Path) -> Path:
    """Joint scores of single runs against the exact score, per discrete observation.

    Arguments:
        panels: one dict per θ with keys theta (float), x (n,), score (n,) of runs at θ, and
            slots (k,), exact (k,): the exact score ∂_θ log p(x|θ) at each slot.
        path: the PNG file to write.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        x, score = panel["x"], panel["score"]
        shown = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:3000]
        jitter = (torch.rand(len(shown), generator=torch.Generator().manual_seed(1)) - 0.5) * 0.5
        ax.scatter(x[shown] + jitter, score[shown], s=3, alpha=0.25, color="goldenrod", label="joint score t(x,z|θ) of a run")
        slots, counts = torch.unique(x, return_counts=True)
        slots = slots[counts >= 10]
        means = torch.stack([score[x == k].mean() for k in slots])
        errs = torch.stack([score[x == k].std() / (x == k).sum().sqrt() for k in slots])
        ax.errorbar(slots, means, yerr=errs, fmt="o", color="black", ms=3, label="mean joint score per slot")
        ax.plot(panel["slots"], panel["exact"], "-", color="tab:blue", label="exact ∂θ log p(x|θ)")
        ax.set(xlabel="slot x", ylabel="score", title=f"θ = {panel['theta']:g}")
        ax.set_ylim(score.quantile(0.001).item() - 1, score.quantile(0.999).item() + 1)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
