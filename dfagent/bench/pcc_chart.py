"""A PNG chart of `bench pcc` results: broken connections per event, one bar per mode."""

from __future__ import annotations

from typing import Any


def write_chart(result: dict[str, Any], path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install 'dfagent[bench]')"
    modes = list(result["modes"])
    events = [e["event"] for e in result["modes"][modes[0]]["events"]] if modes else []
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(modes))
    for i, mode in enumerate(modes):
        broken = [e["broken"] for e in result["modes"][mode]["events"]]
        xs = [x + i * width for x in range(len(broken))]
        bars = ax.bar(xs, broken, width, label=f"{mode} ({result['modes'][mode]['broken_total']})")
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(events))], events)
    ax.set_ylabel("connections broken")
    ax.set_title(f"{result['connections']} live TCP connections through an ECMP router")
    ax.legend(title="mode (total broken)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"
