"""Plots `diffusion-lab decided --csv` output for one or more models: the share of continuations that end
as the same class as their run, and how far apart they end, against t and against λ.

    python benches/plot_decided.py out.png "label=decided.csv" ["label=other.csv" ...]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = sys.argv[1]
series = []
for arg in sys.argv[2:]:
    label, path = arg.split("=", 1)
    # Rows after the last noisy step hold by construction (every continuation is the run's end): left out.
    rows = [r for r in csv.DictReader(open(path)) if r.get("deterministic", "false") != "true"]
    series.append((label, rows))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for label, rows in series:
    t = [int(r["t"]) for r in rows]
    lam = [float(r["log_snr"]) for r in rows]
    same = [100 * float(r["same_class"]) for r in rows]
    spread = [float(r["spread"]) for r in rows]
    line = axes[0].plot(t, same, marker="o", lw=1.5, label=f"{label}: same class (%)")[0]
    axes[0].plot(t, [100 * s for s in spread], marker="s", ls="--", lw=1.2, color=line.get_color(),
                 label=f"{label}: spread (% of full scale)")
    axes[1].plot(lam, same, marker="o", lw=1.5, color=line.get_color(), label=f"{label}: same class (%)")
    axes[1].plot(lam, [100 * s for s in spread], marker="s", ls="--", lw=1.2, color=line.get_color())
ax = axes[0]
ax.set_xlabel("t continued from (sampling runs from right to left)")
ax.set_ylabel("%")
ax.invert_xaxis()
ax.set_title("continuations from one x_t: same garment? how far apart?")
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
ax = axes[1]
ax.set_xlabel("λ = ln(ᾱ / (1 - ᾱ)) continued from")
ax.set_ylabel("%")
ax.set_title("the same against the noise level")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(out, dpi=110)
