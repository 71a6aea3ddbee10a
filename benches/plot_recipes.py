"""Training recipes side by side (issue 36), in one picture:
(a) how much each recipe counts each noise level, p(λ)·w(λ) in ε-loss units (`diffusion-lab schedule --recipes`);
(b) the quality meter over training for each run folder (quality.csv: FD of 250 samples, with real images' FD at the
    same n as the floor, and the loss of the same runs in ε-equivalent units is in the Train view);
(c) FD at n = 1000 against sampling steps (the table benches/recipes.sh prints).

    diffusion-lab schedule --recipes > weights.csv
    python benches/plot_recipes.py out.png weights.csv table.md "label=run_folder" ["label=run_folder" ...]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

out, weights_path, table_path = sys.argv[1:4]
runs = [arg.split("=", 1) for arg in sys.argv[4:]]

fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
ax = axes[0]
rows = list(csv.reader(open(weights_path)))
names = rows[0][1:]
lam = [float(r[0]) for r in rows[1:]]
for j, name in enumerate(names):
    values = [float(r[j + 1]) for r in rows[1:]]
    ax.plot(lam, values, lw=1.6, ls="-" if j < 4 else "--", label=name)
ax.set_yscale("log")
ax.set_ylim(1e-5, 1e7)
ax.set_xlabel("λ = log-SNR (left: noisy, right: clean)")
ax.set_ylabel("p(λ)·w(λ), ε-loss units")
ax.set_title("how much each recipe counts each noise level")
ax.grid(alpha=0.3)
ax.legend(fontsize=7)

ax = axes[1]
floor = None
for label, folder in runs:
    quality = list(csv.DictReader(open(f"{folder}/quality.csv")))
    steps = [int(r["step"]) for r in quality]
    ax.plot(steps, [float(r["frechet_distance"]) for r in quality], marker="o", lw=1.5, label=label)
    floor = float(quality[0]["floor_frechet_distance"])
if floor is not None:
    ax.axhline(floor, color="gray", ls=":", label=f"real images, same n ({floor:.1f})")
ax.set_yscale("log")
ax.set_xlabel("training step (batch 64)")
ax.set_ylabel("FD of 250 samples (DPM++ 2M, 20 steps)")
ax.set_title("quality over training (the same x_T each time)")
ax.grid(alpha=0.3)
ax.legend(fontsize=7)

ax = axes[2]
table = {}
for line in open(table_path):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 4 and cells[1].isdigit():
        table.setdefault(cells[0], []).append((int(cells[1]), float(cells[2])))
for recipe, points in table.items():
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", lw=1.5, label=recipe)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xticks([1, 2, 4, 8, 20])
ax.set_xticklabels(["1", "2", "4", "8", "20"])
ax.set_xlabel("sampling steps (DPM++ 2M, Karras spacing)")
ax.set_ylabel("FD, n = 1000")
ax.set_title("quality against sampling steps")
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out, dpi=110)
