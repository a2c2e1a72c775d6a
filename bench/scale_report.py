"""The figures of `scale.py`: the side-by-side table, the issue's goals as
ratios with pass/fail, and PNG curves of cost against size (matplotlib,
from the optional `bench` extra; without it the plots are skipped, saying so).

Results are {phase: {server: PhaseResult.as_json()}}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# phase -> [(label, key path in a point, higher is better)]
FIGURES: dict[str, list[tuple[str, str, bool]]] = {
    "room": [
        ("join CPU (ms)", "join.cpu_ms", False),
        ("join p50 (ms)", "join.p50_ms", False),
        ("message CPU (ms)", "message.cpu_ms", False),
        ("message p50 (ms)", "message.p50_ms", False),
        ("rows written per join", "rows_per_join", False),
        ("WAL KB per join", "wal_kb_per_join", False),
        ("state tables (MB)", "state_mb", False),
    ],
    "account": [
        ("initial sync CPU (ms)", "initial_sync.cpu_ms", False),
        ("initial sync p50 (ms)", "initial_sync.p50_ms", False),
        ("incremental sync CPU (ms)", "incremental_sync.cpu_ms", False),
        ("incremental sync p50 (ms)", "incremental_sync.p50_ms", False),
        ("sliding sync first CPU (ms)", "sliding_first.cpu_ms", False),
        ("sliding sync first p50 (ms)", "sliding_first.p50_ms", False),
    ],
    "connections": [
        ("server RSS (MB)", "rss_mb", False),
        ("KB per connection", "kb_per_connection", False),
        ("fan-out wake-up p50 (ms)", "fanout.p50_ms", False),
        ("fan-out wake-up p99 (ms)", "fanout.p99_ms", False),
        ("CPU per woken poll (ms)", "fanout.cpu_ms", False),
    ],
    "federation": [
        ("PDUs/s accepted", "pdus_per_s", True),
        ("CPU per PDU (ms)", "cpu_ms_per_pdu", False),
        ("database bytes per event", "db_bytes_per_event", False),
    ],
}
SIZE_LABEL = {
    "room": "members",
    "account": "rooms of the user",
    "connections": "open long polls",
    "federation": "rooms the PDUs go to",
}
SERVERS = ("ours", "Synapse")


def value(point: dict[str, Any], path: str) -> float | None:
    if path == "state_mb":
        return round(point["state_bytes"] / 1e6, 2) if "state_bytes" in point else None
    found: Any = point
    for part in path.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return float(found)


def _advantage(ours: float, synapse: float, higher: bool) -> float | None:
    """How many times better ours is (above 1: ours is better)."""
    if higher:
        return ours / synapse if synapse else None
    return synapse / ours if ours else None


def _points(results: dict[str, Any], phase: str, server: str) -> dict[int, dict[str, Any]]:
    return {p["size"]: p for p in results.get(phase, {}).get(server, {}).get("points", [])}


def table(results: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Both servers' figures per phase and size, and how many times better ours is."""
    lines, rows = [], []
    for phase, figures in FIGURES.items():
        if phase not in results:
            continue
        ours = _points(results, phase, "ours")
        theirs = _points(results, phase, "Synapse")
        lines.append(f"\n{phase} ({SIZE_LABEL[phase]})")
        lines.append(f"{'':<34}{'size':>7}{'ours':>11}{'Synapse':>11}{'ours better by':>16}")
        for label, path, higher in figures:
            for size in sorted(set(ours) | set(theirs)):
                a = value(ours[size], path) if size in ours else None
                b = value(theirs[size], path) if size in theirs else None
                if a is None and b is None:
                    continue
                adv = _advantage(a, b, higher) if a is not None and b is not None else None
                rows.append(
                    {
                        "phase": phase,
                        "figure": label,
                        "size": size,
                        "ours": a,
                        "synapse": b,
                        "higher_is_better": higher,
                        "ours_better_by": None if adv is None else round(adv, 2),
                    }
                )
                shown = [f"{x:>11.1f}" if x is not None else f"{'-':>11}" for x in (a, b)]
                ratio = f"{adv:.2f}x" if adv is not None else "-"
                lines.append(f"{label:<34}{size:>7}{shown[0]}{shown[1]}{ratio:>16}")
        for server in SERVERS:
            res = results[phase].get(server)
            if res and res["stopped_by_budget"]:
                lines.append(
                    f"  ({server}: its time budget ran out; largest size reached "
                    f"{res['largest_size']})"
                )
    return "\n".join(lines), rows


def _ratio_goal(
    name: str, measured: float | None, goal: float, at_most: bool, detail: str
) -> dict[str, Any]:
    if measured is None:
        return {"goal": name, "measured": None, "target": goal, "pass": None, "detail": detail}
    ok = measured <= goal if at_most else measured >= goal
    return {
        "goal": name,
        "measured": round(measured, 2),
        "target": goal,
        "at_most": at_most,
        "pass": ok,
        "detail": detail,
    }


def _growth(points: dict[int, dict[str, Any]], path: str) -> tuple[float | None, str]:
    """Figure at the largest size over the figure at the smallest."""
    if len(points) < 2:
        return None, "needs two sizes"
    small, large = min(points), max(points)
    a, b = value(points[small], path), value(points[large], path)
    if a is None or b is None or not a:
        return None, "missing"
    return b / a, f"{b:.2f} at {large} / {a:.2f} at {small}"


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each a ratio measured in this run."""
    out = []
    room = _points(results, "room", "ours")
    for what, path in (("join", "join.cpu_ms"), ("message", "message.cpu_ms")):
        ratio, detail = _growth(room, path)
        out.append(_ratio_goal(f"{what} CPU at most members / at fewest", ratio, 1.5, True, detail))
    account = _points(results, "account", "ours")
    ratio, detail = _growth(account, "incremental_sync.cpu_ms")
    out.append(_ratio_goal("incremental sync CPU, most rooms / fewest", ratio, 2.0, True, detail))
    conns = _points(results, "connections", "ours")
    if conns:
        largest = max(conns)
        rss = value(conns[largest], "rss_mb")
        out.append(_ratio_goal(f"server RSS (MB) with {largest} long polls", rss, 300, True, ""))
        p99 = value(conns[largest], "fanout.p99_ms")
        woken = conns[largest].get("fanout", {}).get("woken")
        out.append(
            _ratio_goal(f"fan-out p99 (ms) to {woken} polls at {largest}", p99, 250, True, "")
        )
    fed_ours = _points(results, "federation", "ours")
    fed_theirs = _points(results, "federation", "Synapse")
    for size in sorted(set(fed_ours) & set(fed_theirs)):
        a, b = value(fed_ours[size], "pdus_per_s"), value(fed_theirs[size], "pdus_per_s")
        out.append(
            _ratio_goal(
                f"federation PDUs/s vs Synapse, {size} room(s)",
                a / b if a and b else None,
                5.0,
                False,
                f"{a} vs {b}",
            )
        )
    # At least 5x Synapse wherever both finished: the CPU figures (the
    # federation rate has its line above).
    _, rows = table(results)
    for row in rows:
        if row["ours_better_by"] is None or "CPU" not in row["figure"]:
            continue
        out.append(
            _ratio_goal(
                f"vs Synapse: {row['phase']} {row['figure']} at {row['size']}",
                row["ours_better_by"],
                5.0,
                False,
                f"{row['ours']} vs {row['synapse']}",
            )
        )
    return out


def goals_text(found: list[dict[str, Any]]) -> str:
    lines = [f"{'goal':<62}{'measured':>10}{'target':>10}  result"]
    for g in found:
        measured = "-" if g["measured"] is None else f"{g['measured']:.2f}"
        sign = "<=" if g.get("at_most", True) else ">="
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[g["pass"]]
        lines.append(f"{g['goal']:<62}{measured:>10}{sign + str(g['target']):>10}  {verdict}")
    return "\n".join(lines)


def plot(results: dict[str, Any], stem: Path) -> list[Path]:
    """One PNG per phase: each figure against size, both servers; a point
    where a server's budget ran out is ringed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plots")
        return []
    written = []
    for phase, figures in FIGURES.items():
        if phase not in results:
            continue
        cols = 3
        nrows = (len(figures) + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
        for ax, (label, path, _) in zip(axes.flat, figures, strict=False):
            for server, style in zip(SERVERS, ("o-", "s--"), strict=True):
                res = results[phase].get(server)
                if not res:
                    continue
                pts = [(p["size"], value(p, path)) for p in res["points"]]
                pts = [(x, y) for x, y in pts if y is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, label=server)
                if res["stopped_by_budget"]:
                    ax.plot(xs[-1:], ys[-1:], "o", mfc="none", ms=14, color="red")
            ax.set_title(label, fontsize=10)
            ax.set_xlabel(SIZE_LABEL[phase])
            ax.set_xscale("log")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        for ax in list(axes.flat)[len(figures) :]:
            ax.set_visible(False)
        fig.suptitle(f"scale: {phase} (red ring: time budget ran out there)")
        fig.tight_layout()
        out = stem.with_name(f"{stem.name}-{phase}.png")
        fig.savefig(out, dpi=80)
        plt.close(fig)
        written.append(out)
    return written


def markdown(results: dict[str, Any], found: list[dict[str, Any]]) -> str:
    """The table and the goals as Markdown, for bench/README.md."""
    _, rows = table(results)
    out = ["| phase | figure | size | ours | Synapse | ours better by |", "| --- " * 6 + "|"]
    for r in rows:
        cells = [f"{x:,.1f}" if x is not None else "-" for x in (r["ours"], r["synapse"])]
        better = f"{r['ours_better_by']:.2f}x" if r["ours_better_by"] is not None else "-"
        out.append(
            f"| {r['phase']} | {r['figure']} | {r['size']:,} | {cells[0]} | {cells[1]} | {better} |"
        )
    for phase, servers in results.items():
        for server, res in servers.items():
            if res["stopped_by_budget"]:
                out.append(
                    f"\n{phase}, {server}: its time budget ran out; largest size reached "
                    f"{res['largest_size']:,}."
                )
    out += ["", "| goal | measured | target | result |", "| --- | ---: | ---: | --- |"]
    for g in found:
        measured = "-" if g["measured"] is None else f"{g['measured']:.2f}"
        sign = "<=" if g.get("at_most", True) else ">="
        verdict = {True: "pass", False: "**fail**", None: "not measured"}[g["pass"]]
        out.append(f"| {g['goal']} | {measured} | {sign} {g['target']} | {verdict} |")
    return "\n".join(out) + "\n"
