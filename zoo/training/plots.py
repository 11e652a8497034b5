"""curves.png: loss and metrics per epoch, what a person looks at first."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history: dict, path, title: str = "") -> None:
    metrics = [k for k in history if not k.startswith("val_") and k not in ("epoch", "learning_rate")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    epochs = [e + 1 for e in history.get("epoch", range(len(history[metrics[0]])))]
    for ax, m in zip(axes[0], metrics):
        ax.plot(epochs, history[m], "o-", label=f"train {m}")
        if f"val_{m}" in history:
            ax.plot(epochs, history[f"val_{m}"], "s--", label=f"validation {m}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
