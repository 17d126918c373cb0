"""A PNG chart of `bench churn`: pin-table size, evictions, agent RSS and broken connections
over time, one line per mode, the next-hop changes marked."""

from __future__ import annotations

from typing import Any

COLOURS = {"ecmp": "tab:grey", "kernel": "tab:blue", "map": "tab:orange", "map-record": "tab:brown"}
PANELS = (
    ("pins", "pin-table size", 1.0),
    ("evicted", "pins evicted (total)", 1.0),
    ("rss_kb", "agent RSS (MB)", 1 / 1024),
    ("broken", "connections broken (total)", 1.0),
)


def write_chart(result: dict[str, Any], path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install 'dfagent[bench]')"
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(10, 9), sharex=True)
    modes = result["modes"]
    for ax, (key, label, scale) in zip(axes, PANELS, strict=True):
        for mode, m in modes.items():
            pts = [(s["t"], s[key] * scale) for s in m["samples"] if s.get(key) is not None]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, color=COLOURS.get(mode), linewidth=1.2)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    # the changes (the same schedule in every mode): a tick each, coloured by kind
    first: dict[str, Any] = next(iter(modes.values()), {"event_times": []})
    colours = {"drain s1": "tab:red", "undrain s1": "tab:green",
               "s4 announces": "tab:blue", "s4 withdraws": "tab:purple"}  # fmt: skip
    for ev in first["event_times"]:
        for ax in axes:
            ax.axvline(ev["t"], color=colours.get(ev["event"], "grey"), alpha=0.12, linewidth=0.8)
    for mode in modes:
        axes[0].plot([], [], color=COLOURS.get(mode), label=mode)
    for name, c in colours.items():
        axes[0].plot([], [], color=c, alpha=0.5, label=f"| {name}")
    axes[0].legend(fontsize=7, ncol=4, loc="upper left")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(
        f"Churn under a SYN flood: a next-hop change every second, {result['connections']} held "
        f"+ {result['rate']:g} new connections/s, flood {result['flood_rate']:g} SYN/s, "
        f"map capacity {result['capacity']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"
