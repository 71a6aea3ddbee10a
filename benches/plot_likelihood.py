"""Plots `diffusion-lab eval --nll --csv` output: where the bound's bits go over t, and rate against
distortion (Ho et al. 2020, Figure 5).

    python benches/plot_likelihood.py nll.csv out.png "title"
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

source, out, title = sys.argv[1], sys.argv[2], sys.argv[3]
rows = list(csv.DictReader(open(source)))
t = [int(r["t"]) for r in rows]
bits = [float(r["bits"]) for r in rows]
rate = [float(r["rate_bits"]) for r in rows]
rmse = [float(r["rmse"]) for r in rows]
middle = [(a, b) for a, b in zip(t, bits) if a >= 2]

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
ax = axes[0]
ax.plot([a for a, _ in middle], [b for _, b in middle], lw=1.5)
ax.set_yscale("log")
ax.set_xlabel("t")
ax.set_ylabel("L_{t-1} (bits per dimension)")
ax.set_title("where the bits go: one reverse step's KL")
ax.grid(alpha=0.3, which="both")

ax = axes[1]
ax.plot(t, rate, lw=1.5, color="tab:blue", label="rate: bits sent once x_t is known")
ax.set_xlabel("t")
ax.set_ylabel("rate (bits per dimension)", color="tab:blue")
ax.invert_xaxis()
twin = ax.twinx()
twin.plot(t, rmse, lw=1.5, color="tab:red", label="distortion")
twin.set_ylabel("RMSE of x̂_0 (levels of 255)", color="tab:red")
ax.set_title("rate and distortion as sampling runs (T -> 0)")
ax.grid(alpha=0.3)

ax = axes[2]
ax.plot(rate, rmse, lw=1.5, color="tab:purple")
ax.set_xlabel("rate (bits per dimension)")
ax.set_ylabel("RMSE of x̂_0 (levels of 255)")
ax.set_title("distortion against rate")
ax.grid(alpha=0.3)

fig.suptitle(title)
fig.tight_layout()
fig.savefig(out, dpi=100)
