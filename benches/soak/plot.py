#!/usr/bin/env python3
"""Plots a soak's samples (benches/soak/drive.py's CSV) as one PNG: the gateway process's RSS,
its open file descriptors and threads, and each layer's successful and failed requests per
second, against time. Needs matplotlib (benches/soak.sh installs it into a venv).

  plot.py samples.csv out.png [title]"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
title = sys.argv[3] if len(sys.argv) > 3 else "Cairn soak"
t = [float(r["t_s"]) / 60 for r in rows]
fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
ax1.plot(t, [int(r["rss_kib"]) / 1024 for r in rows], color="tab:blue")
ax1.set_ylabel("RSS (MiB)")
ax1.set_ylim(bottom=0)
ax1.grid(alpha=0.3)
ax2.plot(t, [int(r["fds"]) for r in rows], label="open fds", color="tab:orange")
ax2.plot(t, [int(r["threads"]) for r in rows], label="threads", color="tab:gray")
ax2.set_ylabel("count")
ax2.set_ylim(bottom=0)
ax2.legend(loc="lower right")
ax2.grid(alpha=0.3)
# Each row counts the requests of the window since the row before it (10 s, the last one shorter).
span = [max(1e-9, float(b["t_s"]) - float(a["t_s"])) for a, b in zip(rows, rows[1:])]
for layer, color in (("ai", "tab:green"), ("mcp", "tab:purple"), ("a2a", "tab:red")):
    ax3.plot(t[1:], [int(r[f"{layer}_ok"]) / d for r, d in zip(rows[1:], span)], label=f"{layer} ok/s", color=color)
    errs = [int(r[f"{layer}_err"]) / d for r, d in zip(rows[1:], span)]
    if any(errs):
        ax3.plot(t[1:], errs, label=f"{layer} failed/s", color=color, linestyle="--")
ax3.set_ylabel("requests/s (10 s windows)")
ax3.set_xlabel("minutes")
ax3.set_ylim(bottom=0)
ax3.legend(loc="lower right")
ax3.grid(alpha=0.3)
fig.suptitle(title)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
