"""Pictures of RESULTS.md (matplotlib, Agg backend: no display needed)."""

from typing import Sequence

import numpy as np

from espnet_s3net.scoring.statistics import TableBootstrap


def plot_rates(table: TableBootstrap, arms: Sequence[str], metric: str, path: str) -> None:
    """Error rate per column (languages, then High / Low / Avg) by arm: bars at the mean over
    seeds, error bars the bootstrap interval of that mean, dots the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in table.columns if not np.isnan(table.seed_values(arms[0], c)).all()]
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(columns) * max(1, len(arms)) ** 0.5 + 2), 4))
    x = np.arange(len(columns), dtype=float)
    for k, arm in enumerate(arms):
        pos = x - 0.4 + width * (k + 0.5)
        means = np.array([table.mean_sd(arm, c)[0] for c in columns])
        cis = np.array([table.ci(arm, c) for c in columns])
        yerr = np.clip(np.stack([means - cis[:, 0], cis[:, 1] - means]), 0, None)
        ax.bar(pos, means, width * 0.9, yerr=yerr, capsize=2, label=arm, error_kw={"elinewidth": 0.8})
        for p, c in zip(pos, columns):
            seeds = table.seed_values(arm, c)
            ax.plot(np.full(seeds.size, p), seeds, "k.", markersize=2.5)
    n_langs = sum(c in table.langs for c in columns)
    if n_langs < len(columns):
        ax.axvline(n_langs - 0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, columns, rotation=45 if len(columns) > 8 else 0)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{metric}: mean over seeds (dots: seeds), {table.level:.0%} bootstrap interval", fontsize=9)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.legend(fontsize=7, ncol=min(4, len(arms)), loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
