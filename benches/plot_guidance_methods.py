"""Plots benches/guidance_methods.sh's CSV: Fréchet distance against class accuracy, one curve per guidance
method over its scale (each point labelled by its scale), with the real-data floor at the same n.

    python benches/plot_guidance_methods.py guidance-methods.csv out.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

source, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(source)))
labels = {
    "cfg": "CFG (w)",
    "rescale": "CFG + rescale, φ = 0.7 (w)",
    "apg": "APG, η = 0, β = -0.75, r = 2.5 (w)",
    "cfgpp": "CFG++ (λ)",
    "auto": "autoguidance, weak = step 3000 (w)",
}
fig, ax = plt.subplots(figsize=(8, 5.5))
for method, label in labels.items():
    points = [(float(r["accuracy"]), float(r["fd"]), r["scale"]) for r in rows if r["method"] == method]
    if not points:
        continue
    line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", lw=1.5, label=label)
    for accuracy, fd, scale in points:
        ax.annotate(scale, (accuracy, fd), textcoords="offset points", xytext=(4, 3), fontsize=7,
                    color=line.get_color())
real = [(float(r["real_accuracy"]), float(r["real_fd"])) for r in rows if r["real_fd"]]
if real:
    accuracy, fd = real[0]
    ax.axhline(fd, color="gray", ls="--", lw=1)
    ax.plot([accuracy], [fd], marker="*", ms=12, color="gray", ls="none",
            label=f"real test images (FD floor {fd:.2f}, {accuracy:.1f} %)")
n = rows[0]["n"] if rows else "?"
ax.set_xlabel("class accuracy (%): the judge's share of the intended class")
ax.set_ylabel("Fréchet distance to the test set (lower is better)")
ax.set_yscale("log")
ax.set_title(f"Guidance methods on the latent model, n = {n}, DPM++ 2M Karras 20 steps, seed 0")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
