#!/usr/bin/env python3
"""The cost curve's plot: req/s and p99 against the number of news (log scales), one line per
scenario, from the results of driver/scale.py. Needs matplotlib (scripts/bench/plot-requirements.txt,
installed by scale.sh into target/venv/bench-plot).

  scale_plot.py target/bench/scale/results.json target/bench/scale/scale.png
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import SCENARIOS  # noqa: E402

STYLE = {"read": "-", "search": "--", "count": ":"}


def main(results, png):
    with open(results) as f:
        res = json.load(f)
    sizes = [int(n) for n in res["sizes"]]
    med = res["medians"]
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(13, 5.5))
    for name, label, _, conns, kind in SCENARIOS:
        pts = [(n, med[str(n)][name]) for n in sizes if name in med.get(str(n), {})]
        if not pts:
            continue
        legend = f"{name} ({conns or res['conns']} conns)"
        for ax, key in ((ax_rps, "rps"), (ax_p99, "p99_ms")):
            # A run with no answer at all (every request past the server's timeout) has no point.
            xy = [(n, m[key]) for n, m in pts if m.get(key)]
            ax.plot([x for x, _ in xy], [y for _, y in xy], STYLE[kind], marker="o", label=legend)
    ax_p99.axhline(20, color="grey", linewidth=0.8)
    ax_p99.annotate("S3c4 target 20 ms", (sizes[0], 20), textcoords="offset points", xytext=(2, 3),
                    fontsize=8, color="grey")
    ax_p99.axhline(50, color="grey", linewidth=0.8, linestyle=":")
    ax_p99.annotate("count target 50 ms", (sizes[0], 50), textcoords="offset points", xytext=(2, 3),
                    fontsize=8, color="grey")
    for ax, title in ((ax_rps, "req/s (higher is better)"), (ax_p99, "p99 latency, ms (lower is better)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n:,}".replace(",", " ") for n in sizes])
        ax.minorticks_off()
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}".replace(",", " ")))
        ax.set_xlabel("news in the table")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
    ax_rps.legend(fontsize=8, loc="best")
    fig.suptitle(f"newsapi cost curve — {res['finished_utc']}, commit {res.get('commit')}, "
                 f"{res['rounds']} round(s) of {res['dur_s']} s, medians", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"plot: {png}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
