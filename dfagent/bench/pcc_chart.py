"""A PNG chart of `bench pcc` results: broken connections per event, one bar per mode, each
bar stacked by group (held from the start, opened after an earlier event, opened while the
change was applied)."""

from __future__ import annotations

from typing import Any

GROUP_STYLE = {"initial": ("", 1.0), "after": ("//", 0.75), "during": ("xx", 0.5)}


def write_chart(result: dict[str, Any], path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install 'dfagent[bench]')"
    modes = list(result["modes"])
    events = [e["event"] for e in result["modes"][modes[0]]["events"]] if modes else []
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(modes))
    top = 0
    for i, mode in enumerate(modes):
        r = result["modes"][mode]
        color = f"C{i}"
        xs = [x + i * width for x in range(len(r["events"]))]
        bottom = [0] * len(xs)
        for group, (hatch, alpha) in GROUP_STYLE.items():
            heights = [e.get("groups", {}).get(group, {}).get("broken", 0) for e in r["events"]]
            if group == "initial" and "groups" not in r["events"][0]:
                heights = [e["broken"] for e in r["events"]]  # an older result: one group
            label = f"{r.get('label', mode)} ({r['broken_total']})" if group == "initial" else None
            ax.bar(xs, heights, width, bottom=bottom, color=color, alpha=alpha, hatch=hatch,
                   label=label, edgecolor="white")  # fmt: skip
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        top = max([top, *bottom])
        for x, total in zip(xs, bottom, strict=True):
            ax.annotate(str(total), (x, total), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, max(1, top) * 1.4)  # room for the legends above the bars
    ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(events))], events)
    ax.set_ylabel("connections broken (under live traffic)")
    ax.set_title(
        f"{result['connections']} held TCP connections through an ECMP router, plus those "
        "opened during / after each change",
        fontsize=9,
    )
    legend = ax.legend(title="mode (total broken)", loc="upper right")
    ax.add_artist(legend)
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor="grey", alpha=a, hatch=h, edgecolor="white")
        for h, a in GROUP_STYLE.values()
    ]
    names = ["held from the start", "opened after an earlier event", "opened during the change"]
    ax.legend(handles, names, title="group", loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"
