"""Reporting for the digits examples: summary over seeds, tables, files, plots.

The experiment script trains and scores the runs; this module turns the
run records into what a reader looks at: mean ± std per loss with paired
gains over the baselines, the Markdown tables, `results.json`,
`results.csv` (rounded) and the plots. Like `_long_tail.py`, it is the
examples' bookkeeping, not part of the `keras_cbloss` package.
"""

import _long_tail as lt
import numpy as np

from keras_cbloss import class_balanced_weights
from keras_cbloss import effective_number
from keras_cbloss import shot_groups

BASELINE = "ce"  # plain cross-entropy
REWEIGHTED = "ce_class_weight"  # fit(class_weight=...) at 1/n
METRICS = (
    "balanced_accuracy",
    "tail_recall",
    "prior_accuracy",
    "accuracy",
    "many_shot_accuracy",
    "medium_shot_accuracy",
    "few_shot_accuracy",
)
SHOT_METRICS = METRICS[-3:]
# Plain accuracy equals balanced accuracy on the balanced test split, so the
# table shows it once and adds the accuracy at training frequencies.
TABLE_METRICS = ("balanced_accuracy", "tail_recall", "prior_accuracy")
PLOT_BETAS = (0.9, 0.99, 0.999, 0.9999)
# Scores are fractions: 4 decimals keep 0.01 percentage points.
CSV_DECIMALS = {"train_seconds": 2}
CSV_DEFAULT_DECIMALS = 4


def summarize(
    records,
    labels,
    cb_losses=(),
    deferred=None,
    *,
    metrics=METRICS,
    baseline=BASELINE,
    reweighted=REWEIGHTED,
    per_class=("per_class_recall",),
    other_gains=None,
):
    """Mean/std of every metric per loss, and paired gains.

    Args:
        records: List of run dicts (`loss`, `seed`, the `metrics` they
            have, the `per_class` lists), paired by seed across losses.
        labels: Dict loss name -> display label, in table order; must hold
            `baseline` (and `reweighted`, unless it is `None`).
        cb_losses: The names of the package's losses, which are also
            compared with `reweighted` (`gain_over_class_weight`).
        deferred: Optional dict, deferred re-weighting run -> the run
            weighted from the start with the same loss
            (`gain_over_from_start`).
        metrics: The scalar scores to summarize (those absent from the
            records are skipped). Defaults to the digits-LT `METRICS`.
        baseline: The loss every other one is compared with
            (`gain_over_{baseline}`). Defaults to `"ce"`.
        reweighted: The re-weighted baseline the `cb_losses` are also
            compared with, or `None`. Defaults to `"ce_class_weight"`.
        per_class: Keys of per-class lists in the records; each gets
            `{key}_mean` and `{key}_std` over seeds.
        other_gains: Optional dict, gain key -> {loss -> the loss it is
            compared with}: more paired comparisons, stored under the key.

    Returns:
        Dict loss name -> summary entry (JSON-ready).
    """
    comparisons = {
        f"gain_over_{baseline}": {
            name: baseline for name in labels if name != baseline
        }
    }
    if reweighted is not None:
        comparisons["gain_over_class_weight"] = {
            name: reweighted for name in cb_losses
        }
    comparisons["gain_over_from_start"] = deferred or {}
    comparisons.update(other_gains or {})
    metrics = [m for m in metrics if m in records[0]]
    by_loss = {
        name: [r for r in records if r["loss"] == name] for name in labels
    }

    def scores(name, metric):
        return np.array([r[metric] for r in by_loss[name]])

    summary = {}
    for name, runs in by_loss.items():
        entry = {"label": labels[name], "seeds": [r["seed"] for r in runs]}
        for metric in metrics:
            values = scores(name, metric)
            mean, std = lt.mean_std(values)
            entry[metric] = {
                "mean": mean,
                "std": std,
                "values": values.tolist(),
            }
            for key, pairs in comparisons.items():
                if name in pairs:
                    entry[metric][key] = lt.paired_gains(
                        values, scores(pairs[name], metric)
                    )
        for key in per_class:
            values = np.array([r[key] for r in runs], np.float64)
            entry[f"{key}_mean"] = values.mean(axis=0).tolist()
            entry[f"{key}_std"] = (
                values.std(axis=0, ddof=1)
                if len(runs) > 1
                else np.full(values.shape[1], np.nan)
            ).tolist()
        summary[name] = entry
    return summary


def best_loss(summary, names):
    """The one of `names` with the highest mean balanced accuracy."""
    return max(names, key=lambda n: summary[n]["balanced_accuracy"]["mean"])


def _rows_with_gain_over_ce(summary, metrics, baseline=BASELINE):
    """A table row per loss: mean ± std of each of `metrics`, then its
    paired gain over `baseline` (`(baseline)` on the baseline's own row)."""
    rows = []
    for name, entry in summary.items():
        cells = [entry["label"]]
        cells += [
            lt.format_pm(entry[m]["mean"], entry[m]["std"]) for m in metrics
        ]
        if name == baseline:
            cells += ["(baseline)"] * len(metrics)
        else:
            cells += [
                lt.format_gain(entry[m][f"gain_over_{baseline}"])
                for m in metrics
            ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def metric_table(summary, metrics, headers, baseline=BASELINE):
    """Markdown table lines (percent): a row per loss with mean ± std of
    each of `metrics` (column titles `headers[metric]`), then the paired
    gains over `baseline`."""
    titles = [headers[m] for m in metrics]
    return [
        "| loss | "
        + " | ".join(titles)
        + " | "
        + " | ".join(f"gain: {t}" for t in titles)
        + " |",
        "|---|" + "---|" * (2 * len(metrics)),
    ] + _rows_with_gain_over_ce(summary, metrics, baseline)


def gain_row(label, entry, key, metrics=TABLE_METRICS):
    """A table row: a loss's paired gains (`key`) on `metrics`."""
    cells = [label] + [lt.format_gain(entry[m][key]) for m in metrics]
    return "| " + " | ".join(cells) + " |"


def results_table(
    summary, cb_losses, num_seeds, test_per_class, tail_k, deferred=None
):
    """Markdown tables (percent): mean ± std over seeds, paired gains over
    CE, over `REWEIGHTED` and (for `deferred`) over weighting from the
    start."""
    lines = [
        "| loss | balanced acc. (= accuracy) | tail recall | "
        "acc. at train freq. | gain: bal. acc. | gain: tail recall | "
        "gain: acc. at train freq. |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += _rows_with_gain_over_ce(summary, TABLE_METRICS)
    gain_header = (
        "gain: bal. acc. | gain: tail recall | gain: acc. at train freq. |"
    )
    lines += [
        "",
        f"| vs {summary[REWEIGHTED]['label']} | {gain_header}",
        "|---|---|---|---|",
    ]
    lines += [
        gain_row(summary[n]["label"], summary[n], "gain_over_class_weight")
        for n in cb_losses
    ]
    if deferred:
        lines += [
            "",
            f"| deferred vs from the start | {gain_header}",
            "|---|---|---|---|",
        ]
        lines += [
            gain_row(
                f"{summary[n]['label']} vs {summary[start]['label']}",
                summary[n],
                "gain_over_from_start",
            )
            for n, start in deferred.items()
        ]
    lines.append("")
    lines.append(
        f"Percent, mean ± std over {num_seeds} seed(s), on the balanced test "
        f"split ({test_per_class} images per class, where plain accuracy "
        f"equals balanced accuracy). Tail recall: the {tail_k} rarest "
        "training classes. Acc. at train freq.: per-class recall weighted "
        "by the training class sizes, the accuracy on a test set as "
        "long-tailed as the training set. Gains are paired by seed: mean ± "
        "std of the per-seed difference, and the two-sided paired t-test p."
    )
    return "\n".join(lines)


def shot_table(summary, counts):
    """Markdown table (percent) of many/medium/few-shot accuracy, with the
    paired gain over CE; the header says which classes form each group."""
    groups = shot_groups(counts)
    headers = []
    for metric in SHOT_METRICS:
        shot = metric.split("_")[0]
        classes = np.flatnonzero(groups[shot]).tolist()
        noun = "class" if len(classes) == 1 else "classes"
        headers.append(f"{shot}-shot ({noun} {span(classes)})")
    lines = [
        "| loss | "
        + " | ".join(headers)
        + " | "
        + " | ".join(f"gain: {h.split(' ')[0]}" for h in headers)
        + " |",
        "|---|" + "---|" * (2 * len(headers)),
    ]
    lines += _rows_with_gain_over_ce(summary, SHOT_METRICS)
    lines += [
        "",
        "Percent, mean ± std over seeds, gains paired by seed as "
        "above. Shot groups after Liu et al. (2019), by training "
        "images: many-shot more than 100, medium-shot 20 to 100, "
        "few-shot fewer than 20 (`ShotAccuracy`); each is the mean "
        "recall of its classes.",
    ]
    return "\n".join(lines)


def span(classes):
    """`'0'`, `'1-3'` or `'1, 4'`: the class ids of a group, short."""
    if not classes:
        return "none"
    if classes == list(range(classes[0], classes[-1] + 1)) and len(classes) > 1:
        return f"{classes[0]}-{classes[-1]}"
    return ", ".join(map(str, classes))


def csv_rows(records, per_class=None):
    """One flat row per run, floats rounded (`CSV_DECIMALS`).

    `per_class` maps a record's per-class list to the prefix of its columns
    (`{prefix}_{c}`); defaults to `{"per_class_recall": "recall"}`.
    `train_counts` is left out (it is in `results.json`).
    """
    per_class = per_class or {"per_class_recall": "recall"}
    rows = []
    for record in records:
        row = {
            k: v
            for k, v in record.items()
            if k != "train_counts" and not isinstance(v, list)
        }
        for key, prefix in per_class.items():
            row.update({f"{prefix}_{c}": v for c, v in enumerate(record[key])})
        rows.append(
            {
                k: round(v, CSV_DECIMALS.get(k, CSV_DEFAULT_DECIMALS))
                if isinstance(v, float)
                else v
                for k, v in row.items()
            }
        )
    return rows


def write_results(out, table, results, records, per_class=None):
    """Writes `results.md`, `results.json` (full precision), `results.csv`
    (`per_class` as for `csv_rows`)."""
    (out / "results.md").write_text(table + "\n")
    lt.write_json(out / "results.json", results)
    lt.write_csv(out / "results.csv", csv_rows(records, per_class))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


BAR_COLORS = ("#9e9e9e", "#ff7f0e", "#1f77b4", "#2ca02c", "#d62728", "#9467bd")


def bar_panel(ax, summary, counts, names, key, ylabel):
    """Grouped bars on `ax`: per-class `{key}_mean` ± `{key}_std` of the
    runs `names` (first one grey), the class sizes under the class ids."""
    classes = np.arange(len(counts))
    width = 0.8 / len(names)
    for i, (name, color) in enumerate(zip(names, BAR_COLORS)):
        mean = np.array(summary[name][f"{key}_mean"], np.float64)
        std = np.array(summary[name][f"{key}_std"], np.float64)
        yerr = None if np.isnan(std).all() else std
        offset = (i - (len(names) - 1) / 2) * width
        ax.bar(
            classes + offset,
            mean,
            width,
            yerr=yerr,
            capsize=2,
            color=color,
            label=summary[name]["label"],
        )
    ax.set_xticks(classes)
    ax.set_xticklabels([f"{c}\nn={n}" for c, n in zip(classes, counts)])
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)


def plot_per_class_recall(summary, counts, best, path):
    """Bars of per-class recall: plain CE, CE + class_weight, best CB loss.

    Returns:
        The labels of the drawn runs, in the legend's order.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    names = (BASELINE, REWEIGHTED, best)
    bar_panel(ax, summary, counts, names, "per_class_recall", "test recall")
    ax.set_xlabel("digit class and its number of training images")
    ax.set_title(
        "Per-class recall, mean ± std over seeds (head class on the left)"
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [summary[name]["label"] for name in names]


def plot_class_weights(counts, beta, path):
    """The paper's Figure 1 idea: E(n) saturates, so weights flatten out."""
    plt = pyplot()
    betas = sorted(set(PLOT_BETAS) | {beta})
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(betas)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3))

    n = np.logspace(0, 4, 200)
    left.plot(n, n, "k--", lw=1, label="E(n) = n (no overlap)")
    for b, color in zip(betas, colors):
        left.plot(
            n,
            effective_number(n, b),
            color=color,
            lw=2.5 if b == beta else 1.2,
            label=f"beta = {b}",
        )
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("number of samples n")
    left.set_ylabel("effective number E(n)")
    left.set_title("E(n) = (1 - beta^n) / (1 - beta) saturates at 1/(1-beta)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3, which="both")

    counts = np.asarray(counts)
    inverse = 1.0 / counts
    # Drawn on top: beta = 0.999 and 0.9999 would hide it otherwise.
    right.plot(
        counts,
        inverse * len(counts) / inverse.sum(),
        "k--",
        marker="s",
        ms=4,
        lw=1,
        zorder=5,
        label="inverse frequency 1/n",
    )
    for b, color in zip(betas, colors):
        right.plot(
            counts,
            class_balanced_weights(counts, b),
            color=color,
            marker="o",
            ms=4,
            lw=2.5 if b == beta else 1.2,
            label=f"beta = {b}",
        )
    right.plot(
        counts,
        np.ones_like(counts, np.float64),
        color="0.6",
        lw=1,
        label="beta = 0 (plain loss)",
    )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("class size n_c (this training set)")
    right.set_ylabel("class weight w_c (sum = C)")
    right.set_title(f"Class weights for these {len(counts)} class sizes")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
