"""What the harness computes from its measurements and prints: percentiles, ratios,
the targets of the issue, and the tables.

Target names: ``graphdock`` (embedded SQLite) or ``graphdock-pg-<N>w`` (PostgreSQL +
Redis, one API process and N workers) are graphdock; ``official`` and ``aegra`` the
other servers; ``in-process`` the same graphs run inside the harness (stateless shapes
without a checkpointer, threaded shapes with graphdock's checkpointer), and
``in-process+sqlite`` / ``in-process+postgres`` the stateless shapes (a, c) with that
checkpointer and a fresh thread per run.
"""

from __future__ import annotations

from typing import Any

GRAPHDOCK = "graphdock"
OFFICIAL = "official"
AEGRA = "aegra"
INPROC = "in-process"
INPROC_SQLITE = "in-process+sqlite"
INPROC_PG = "in-process+postgres"
#: other servers graphdock is compared with: (target, short label for the tables)
SERVER_REFERENCES = ((OFFICIAL, "off."), (AEGRA, "aegra"))
#: workloads whose in-process runs are already checkpointed (b, f: a thread per run)
CHECKPOINTED_INPROC = ("b", "f")

#: the issue's targets for the PostgreSQL + Redis backend
AEGRA_FACTOR = 3.0
P99_MS = 50.0
THREADED_SHARE = 0.5


def deployment_name(workers: int) -> str:
    """The target name of a scaled-out graphdock with one API process and ``workers`` workers."""
    return f"{GRAPHDOCK}-pg-{workers}w"


def is_graphdock(target: str) -> bool:
    return target == GRAPHDOCK or target.startswith(f"{GRAPHDOCK}-")


def durable_baseline(key: str, checkpointed: str) -> str:
    """The in-process target with graphdock's checkpointer for workload ``key``."""
    return INPROC if key in CHECKPOINTED_INPROC else checkpointed


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p90/p99/mean/max in milliseconds (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(v * 1000.0 for v in values)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
        return ordered[index]

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "mean": sum(ordered) / len(ordered),
        "max": ordered[-1],
    }


def _get(row: dict[str, Any], metric: str, key: str) -> float | None:
    value = row.get(metric)
    return None if value is None else value.get(key)


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def cost_ms(row: dict[str, Any]) -> float | None:
    """CPU per run of a target: its own processes, plus PostgreSQL + Redis when measured."""
    if row["cpu_ms_per_run"] is None:
        return None
    return row["cpu_ms_per_run"] + (row.get("services_cpu_ms_per_run") or 0.0)


def ratios(rows: list[dict[str, Any]], checkpointed: str = INPROC_SQLITE) -> list[dict[str, Any]]:
    """Each graphdock target against the other servers and the in-process runs, per workload.

    Keys ``<metric>_vs_<official|aegra|inprocess>``; ``cpu_per_run_vs_*`` compares
    :func:`cost_ms`; ``throughput_vs_inprocess_durable`` is against the in-process runs
    with graphdock's checkpointer (``checkpointed`` for a and c).
    """
    by = {(r["workload"], r["target"]): r for r in rows}
    out = []
    for key in dict.fromkeys(r["workload"] for r in rows):
        for gd in [r for r in rows if r["workload"] == key and is_graphdock(r["target"])]:
            entry: dict[str, Any] = {"workload": key, "name": gd["name"], "target": gd["target"]}
            for other, label in ((OFFICIAL, "official"), (AEGRA, "aegra"), (INPROC, "inprocess")):
                ref = by.get((key, other))
                if ref is None:
                    continue
                entry[f"throughput_vs_{label}"] = _div(gd["throughput_rps"], ref["throughput_rps"])
                entry[f"p50_vs_{label}"] = _div(_get(gd, "latency_ms", "p50"), _get(ref, "latency_ms", "p50"))
                entry[f"p99_vs_{label}"] = _div(_get(gd, "latency_ms", "p99"), _get(ref, "latency_ms", "p99"))
                if key == "d":
                    entry[f"custom_p50_vs_{label}"] = _div(
                        _get(gd, "custom_event_ms", "p50"), _get(ref, "custom_event_ms", "p50")
                    )
                if other != INPROC:
                    entry[f"cpu_per_run_vs_{label}"] = _div(cost_ms(gd), cost_ms(ref))
                    entry[f"peak_rss_vs_{label}"] = _div(gd["peak_rss_mb"], ref["peak_rss_mb"])
            durable = by.get((key, durable_baseline(key, checkpointed)))
            if durable is not None:
                entry["throughput_vs_inprocess_durable"] = _div(gd["throughput_rps"], durable["throughput_rps"])
            out.append(entry)
    return out


def targets(rows: list[dict[str, Any]], ratio_rows: list[dict[str, Any]], clients: int) -> list[dict[str, Any]]:
    """The issue's targets for the PostgreSQL + Redis backend, per graphdock deployment.

    - ``aegra_3x``: at least 3x Aegra's throughput on every workload Aegra serves;
    - ``p99_50ms``: p99 under 50 ms on every workload (meaningful at 16 clients);
    - ``threaded_half``: at least half the in-process throughput with the PostgreSQL
      checkpointer on the threaded workload (b).

    Each entry: target, check, values (workload -> measured ratio or ms), met (None
    when there was nothing to compare with).
    """
    out = []
    for target in dict.fromkeys(r["target"] for r in rows if is_graphdock(r["target"])):
        mine = [q for q in ratio_rows if q["target"] == target]
        vs_aegra = {q["workload"]: q["throughput_vs_aegra"] for q in mine if q.get("throughput_vs_aegra") is not None}
        p99 = {r["workload"]: _get(r, "latency_ms", "p99") for r in rows if r["target"] == target}
        threaded = {q["workload"]: q["throughput_vs_inprocess"] for q in mine if q["workload"] == "b" and q.get("throughput_vs_inprocess") is not None}
        out.append({"target": target, "check": f">= {AEGRA_FACTOR:g}x aegra throughput", "values": vs_aegra,
                    "met": all(v >= AEGRA_FACTOR for v in vs_aegra.values()) if vs_aegra else None})
        out.append({"target": target, "check": f"p99 < {P99_MS:g} ms at {clients} clients", "values": p99,
                    "met": all(v is not None and v < P99_MS for v in p99.values()) if p99 else None})
        out.append({"target": target, "check": f">= {THREADED_SHARE:g}x in-process+PostgresSaver on b", "values": threaded,
                    "met": all(v >= THREADED_SHARE for v in threaded.values()) if threaded else None})
    return out


# -- tables ------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def table(headers: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in body:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    """The tables the harness prints (and RESULTS.md entries copy)."""
    rows = result["results"]
    services = any(r.get("services_cpu_ms_per_run") is not None for r in rows)
    out = []
    body = []
    for r in rows:
        lat = r["latency_ms"] or {}
        extra = ""
        if r["custom_event_ms"]:
            extra = f"custom p50 {r['custom_event_ms']['p50']:.1f} / p99 {r['custom_event_ms']['p99']:.1f}"
        body.append([
            f"{r['workload']} {r['name']}", r["target"], _fmt(r["throughput_rps"]),
            _fmt(lat.get("p50")), _fmt(lat.get("p99")), str(r["errors"]),
            _fmt(r["cpu_ms_per_run"], ".2f"),
            *([_services(r)] if services else []),
            _fmt(r["client_cpu_ms_per_run"], ".2f"), _fmt(r["peak_rss_mb"], ".0f"), extra,
        ])
    out.append(table(
        ["workload", "target", "runs/s", "p50 ms", "p99 ms", "errors", "cpu ms/run",
         *(["pg+redis cpu ms/run (pg / redis)"] if services else []), "client cpu ms/run", "peak RSS MB", "custom event (ms)"],
        body,
    ))
    if result.get("not_served"):
        out.append("Not served (the route answered 404/405; not measured):\n" + "\n".join(
            f"- {n['target']}: {n['workload']} {n['name']} ({n['reason']})" for n in result["not_served"]
        ))
    body = []
    for name, srv in result["servers"].items():
        body.append([
            name, _fmt(srv["startup_s"], ".2f"), _fmt(srv["idle_rss_mb"], ".0f"),
            _fmt(srv["peak_rss_mb"], ".0f"), _fmt(srv["hwm_mb"], ".0f"),
        ])
    out.append(table(["server", "start-up s", "idle RSS MB", "peak RSS MB (sampled)", "VmHWM MB"], body))
    out.append(_ratio_table(result["ratios"], services))
    if result.get("targets"):
        body = [
            [t["target"], t["check"], ", ".join(f"{k} {_fmt(v, '.2f')}" for k, v in t["values"].items()) or "-",
             {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]]
            for t in result["targets"]
        ]
        out.append("Targets:\n" + table(["target", "check", "measured", "status"], body))
    return "\n\n".join(out)


def _services(row: dict[str, Any]) -> str:
    total, split = row.get("services_cpu_ms_per_run"), row.get("services_cpu_ms_per_run_by_service") or {}
    if total is None:
        return "-"
    if "postgres" in split and "redis" in split:
        return f"{total:.2f} ({split['postgres']:.1f} / {split['redis']:.1f})"
    return f"{total:.2f}"


def _ratio_table(ratio_rows: list[dict[str, Any]], services: bool) -> str:
    several = len({q["target"] for q in ratio_rows}) > 1
    refs = [(label, short) for label, short in (("official", "off."), ("aegra", "aegra"))
            if any(f"throughput_vs_{label}" in q for q in ratio_rows)]
    headers = ["workload", *(["target"] if several else [])]
    for _, short in refs:
        headers += [f"runs/s vs {short}", f"p50 vs {short}", f"p99 vs {short}", f"cpu/run vs {short}", f"RSS vs {short}"]
    headers += ["runs/s vs in-proc", "p50 vs in-proc", "runs/s vs durable in-proc"]
    body = []
    for q in ratio_rows:
        line = [f"{q['workload']} {q['name']}", *([q["target"]] if several else [])]
        for label, _ in refs:
            line += [_fmt(q.get(f"{m}_vs_{label}"), ".2f") for m in ("throughput", "p50", "p99", "cpu_per_run", "peak_rss")]
        line += [
            _fmt(q.get("throughput_vs_inprocess"), ".3f"), _fmt(q.get("p50_vs_inprocess"), ".1f"),
            _fmt(q.get("throughput_vs_inprocess_durable"), ".3f"),
        ]
        body.append(line)
    others = " and ".join(["graphdock / " + label for label, _ in refs] + ["graphdock / in-process"])
    caption = (
        f"{others} (throughput: >1 is faster; latency, CPU, RSS: <1 is better; durable in-process: the same"
        " graph with graphdock's checkpointer"
        + ("; CPU per run includes PostgreSQL + Redis" if services else "") + ")"
    )
    return caption + "\n" + table(headers, body)
