"""Summaries of the runs: medians over the rounds, the issue's targets (met or not), and the
Markdown tables printed at the end of a run and written beside its JSON."""
import statistics

from sample import NCPU
from scenarios import SCENARIOS

FIELDS = ["rps", "rps_little", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"]


def medians(runs):
    """Median of every numeric field over the rounds, per (target, scenario); min and max of
    req/s and p99 too."""
    groups = {}
    for r in runs:
        groups.setdefault((r["target"], r["scenario"]), []).append(r)
    out = {}
    for (target, scen), rs in groups.items():
        m = {"rounds": len(rs), "label": rs[0]["label"], "conns": rs[0]["conns"]}
        for k in FIELDS:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                m[k] = round(statistics.median(vals), 3)
        for k in ("rps", "p99_ms"):
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                m[k + "_range"] = [round(min(vals), 2), round(max(vals), 2)]
        m["non2xx"] = [r.get("non2xx", r.get("failed", 0)) for r in rs]
        m["requests"] = [r.get("requests") for r in rs]
        m["socket_errors"] = [sum(r.get(k, 0) for k in ("connect_err", "read_err", "write_err",
                                                          "timeout_err")) for r in rs]
        m["rss_max_mb"] = max((r.get("rss_max_mb") or 0) for r in rs)
        for g in ("server", "server_user", "server_sys", "postgres", "load", "other"):
            vals = [r["cpu_pct_of_one_core"][g] for r in rs if g in r["cpu_pct_of_one_core"]]
            if vals:
                m.setdefault("cpu", {})[g] = round(statistics.median(vals), 1)
        if m.get("rps"):
            # CPU time per request in microseconds, by group (from the medians).
            m["cpu_us_per_request"] = {g: round(v / 100 / m["rps"] * 1e6)
                                       for g, v in m["cpu"].items()}
        bgs = [r["background_signin"]["rps"] for r in rs if r.get("background_signin")]
        if bgs:
            m["background_signin_rps"] = round(statistics.median(bgs), 2)
        out.setdefault(target, {})[scen] = m
    return out


def check_targets(res):
    """The targets, each with the figure it is judged on and whether it is met: issue 15's first
    (ratios to PocketBase, LoopBack and pgbench measured in the same run), then the earlier ones
    that issue 15 does not replace."""
    med = res["medians"]
    na = med.get("newsapi", {})
    c10 = med.get("newsapi_c10", {})
    lb = med.get("loopback", {})
    pb = med.get("pocketbase", {})
    pg = med.get("pgbench", {})
    out = []

    def add(name, value, goal, met, issue="15"):
        out.append({"target": name, "value": value, "goal": goal, "issue": issue,
                    "met": None if met is None else bool(met)})

    def ratio(name, a, b, goal, key="rps"):
        if a and b and a.get(key) and b.get(key):
            r = a[key] / b[key]
            add(name, f"{r:.2f}x ({a[key]:.1f} / {b[key]:.1f})", f">= {goal}x", r >= goal)

    ratio("S1 req/s vs PocketBase", na.get("S1"), pb.get("S1"), 3)
    ratio("S1 req/s vs LoopBack", na.get("S1"), lb.get("S1"), 20)
    if "S1" in na and "P64" in pg:
        share = na["S1"]["rps"] / pg["P64"]["rps"]
        add("S1 req/s vs pgbench -S -M prepared (64 clients)", f"{share * 100:.0f}% "
            f"({na['S1']['rps']:.0f} / {pg['P64']['rps']:.0f})", ">= 60%", share >= 0.6)
    ratio("S2 req/s vs PocketBase S2s (skipTotal=1)", na.get("S2"), pb.get("S2s"), 2)
    ratio("S2 req/s vs LoopBack", na.get("S2"), lb.get("S2"), 10)
    ratio("S4 req/s vs PocketBase", na.get("S4"), pb.get("S4"), 1)
    ratio("S5 sign-ins/s at cost 10 vs PocketBase (Little's law)", c10.get("S5"), pb.get("S5"), 1.2,
          "rps_little")
    if "S7a" in na and "S7b" in na:
        r = na["S7b"]["p99_ms"] / na["S7a"]["p99_ms"]
        theirs = ""
        if "S7a" in pb and "S7b" in pb:
            theirs = f"; PocketBase {pb['S7b']['p99_ms'] / pb['S7a']['p99_ms']:.1f}x"
        add("S7 p99 during sign-ins vs alone", f"{r:.1f}x ({na['S7b']['p99_ms']:.2f} / "
            f"{na['S7a']['p99_ms']:.2f} ms{theirs})", "<= 2x", r <= 2)
    rss = res.get("rss", {})
    ours = [rss[t]["max_under_load_mb"] for t in ("newsapi", "newsapi_c10")
            if rss.get(t, {}).get("max_under_load_mb") is not None]
    if ours:
        theirs = rss.get("pocketbase", {}).get("max_under_load_mb")
        add("RSS max under every scenario", f"{max(ours):.1f} MB" +
            (f" (PocketBase {theirs:.1f} MB)" if theirs else ""), "<= 50 MB", max(ours) <= 50)

    # Earlier targets (issue 5) that issue 15 keeps.
    for s in ("S1", "S2", "S4"):
        if s in na:
            p99 = na[s].get("p99_ms")
            add(f"{s} p99 at {na[s]['conns']} conns", f"{p99:.2f} ms", "< 10 ms", p99 < 10, "5")
    for s in ("S3", "S3c4"):
        if s in na:
            p99 = na[s]["p99_ms"]
            add(f"{s} p99 at {na[s]['conns']} conns", f"{p99:.2f} ms", "< 20 ms", p99 < 20, "5")
    bc = res.get("bcrypt", {})
    for target, cost in (("newsapi", res["setup"].get("bcrypt_cost")), ("newsapi_c10", 10)):
        if med.get(target, {}).get("S5", {}).get("rps_little") and str(cost) in bc:
            ideal = NCPU / (bc[str(cost)]["median_ms"] / 1000)
            m = med[target]["S5"]
            share = m["rps_little"] / ideal
            add(f"S5 sign-ins/s vs bcrypt ideal, cost {cost}",
                f"{share * 100:.0f}% ({m['rps_little']:.2f} by Little's law, wrk {m['rps']:.2f};"
                f" ideal {ideal:.2f})", ">= 90%", share >= 0.9, "5")
    st = res.get("startup", {}).get("newsapi", {}).get("median_ms")
    if st is not None:
        add("ready after start (migrations applied)", f"{st:.0f} ms", "< 500 ms", st < 500, "5")
    return out


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def combined(res):
    """The one table of issue 15: per scenario, newsapi beside LoopBack, PocketBase and pgbench,
    with the ratios (medians of the rounds)."""
    med = res["medians"]
    na, c10 = med.get("newsapi", {}), med.get("newsapi_c10", {})
    lb, pb, pg = med.get("loopback", {}), med.get("pocketbase", {}), med.get("pgbench", {})

    def rps(m):
        # Sign-ins by Little's law where there is one (see the footnote), else wrk's req/s.
        return m.get("rps_little") or m.get("rps") if m else None

    def num(m):
        if not m or rps(m) is None:
            return "-"
        return f"{rps(m):,.{2 if rps(m) < 100 else 0}f}{'*' if m.get('rps_little') else ''}"

    def cell(m, cpu=False):
        if not m:
            return "-"
        text = f"{num(m)} ({fmt(m.get('p99_ms'), 2)} ms"
        if cpu:
            text += f", {m.get('cpu_us_per_request', {}).get('server', '-')} µs"
        return text + ")"

    def ratio(a, b):
        return f"{rps(a) / rps(b):.2f}x" if a and b and rps(a) and rps(b) else "-"

    def rss(*ms):
        return " / ".join(fmt(m.get("rss_max_mb") or None) if m else "-" for m in ms)

    lines = ["| scenario | conns | newsapi req/s | p99 ms | CPU µs/req server+pg | LoopBack req/s (p99) |"
             " PocketBase req/s (p99, CPU µs/req) | pgbench tps | newsapi / PocketBase |"
             " newsapi / LoopBack | newsapi / pgbench | RSS max MB newsapi / PocketBase |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for scen, *_ in SCENARIOS:
        if scen == "S5":
            # Equal cost: newsapi_c10 (cost 10) against LoopBack (bcryptjs 10) and PocketBase (10).
            rows.append(("S5", f"cost {res['setup'].get('bcrypt_cost')}", na.get("S5"), None, None,
                         None))
            rows.append(("S5", "cost 10", c10.get("S5"), lb.get("S5"), pb.get("S5"), None))
        elif scen == "S2s":
            rows.append(("S2s", "newsapi: S2", na.get("S2"), None, pb.get("S2s"), None))
        else:
            p = {"S1": "P64", "S7a": "P16"}.get(scen)
            rows.append((scen, None, na.get(scen), lb.get(scen), pb.get(scen),
                         (p, pg.get(p)) if p and p in pg else None))
    for scen, note, n, l, b, p in rows:
        if not (n or l or b):
            continue
        conns = (n or l or b)["conns"]
        us = n.get("cpu_us_per_request", {}) if n else {}
        pgcell = f"{p[0]} {p[1]['rps']:,.0f}" if p else "-"
        lines.append(
            f"| {scen}{f' ({note})' if note else ''} | {conns} | {num(n)} |"
            f" {fmt(n.get('p99_ms'), 2) if n else '-'} |"
            f" {us.get('server', '-')}+{us.get('postgres', '-')} | {cell(l)} | {cell(b, True)} |"
            f" {pgcell} | {ratio(n, b)} | {ratio(n, l)} |"
            f" {ratio(n, p[1]) if p else '-'} | {rss(n, b)} |")
    lines.append("")
    lines.append("Medians of the rounds. \\* sign-ins/s by Little's law (connections / mean latency)."
                 " PocketBase's CPU is its whole process, SQLite included (it has no PostgreSQL:"
                 " 0 µs there); newsapi's is server + PostgreSQL. S2 for PocketBase is offset pages"
                 " with a COUNT (totalItems), S2s its fast path without it; newsapi's S2 follows its"
                 " cursor. S6: newsapi and LoopBack answer 401, PocketBase 404 (a bad token makes"
                 " the caller a guest). S5 ratios are at equal bcrypt cost (10).")
    return "\n".join(lines)


def targets_table(res):
    out = ["| target (issue) | measured | goal | met |", "|---|---|---|---|"]
    for t in res.get("targets", []):
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        out.append(f"| {t['target']} ({t.get('issue', '-')}) | {t['value']} | {t['goal']} | {met} |")
    return out


def table(res):
    med = res["medians"]
    lines = []
    s = res["setup"]
    lines.append(f"newsapi benchmark — {res['finished_utc']} — {res['rounds']} round(s) of "
                 f"{res['dur_s']} s per run ({res['warm_s']} s warm-up), wrk -t{res['threads']}; "
                 f"load average before: {res['loadavg_before']}")
    lines.append(f"seed: {s.get('seed', {})}")
    if s.get("source"):
        lines.append(f"source: commit {s['source'].get('commit')}, uncommitted: "
                     f"{', '.join(x.strip() for x in s['source'].get('uncommitted', [])) or 'none'}")
    if "pocketbase" in med or "loopback" in med:
        lines.append("")
        lines.append(combined(res))
        lines.append("")
        lines += targets_table(res)
        lines.append("")
        lines.append("In detail (medians; PocketBase uses no PostgreSQL: its pg % is other work's):")
    lines.append("")
    lines.append("| scenario | what | conns | req/s | p50 ms | p90 ms | p99 ms | non-2xx / requests |"
                 " CPU % of one core: server (user+sys) / pg / wrk / other |"
                 " CPU µs per request: server / pg | RSS max MB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    order = [x[0] for x in SCENARIOS]

    def row(target, scen, m, label=None):
        nonok = "/".join(str(x) for x in m["non2xx"]) + " / " + "/".join(
            str(x) for x in m["requests"] if x is not None)
        c = m["cpu"]
        us = m.get("cpu_us_per_request", {})
        rps = fmt(m.get("rps"), 2 if scen == "S5" else 1)
        if m.get("rps_little"):
            rps += f" ({m['rps_little']:.2f}*)"
        return (f"| {scen}{'' if target == 'newsapi' else ' ' + target} | {label or m['label']} |"
                f" {m['conns']} | {rps} | {fmt(m.get('p50_ms'), 2)} |"
                f" {fmt(m.get('p90_ms'), 2)} | {fmt(m.get('p99_ms'), 2)} | {nonok} |"
                f" {c['server']} ({c.get('server_user', '-')}+{c.get('server_sys', '-')}) /"
                f" {c['postgres']} / {c['load']} / {c['other']} |"
                f" {us.get('server', '-')} / {'none' if target == 'pocketbase' else us.get('postgres', '-')} |"
                f" {fmt(m.get('rss_max_mb') or None)} |")

    for scen in order:
        if scen in med.get("newsapi", {}):
            lines.append(row("newsapi", scen, med["newsapi"][scen]))
        if scen == "S5" and "S5" in med.get("newsapi_c10", {}):
            lines.append(row("newsapi_c10", "S5", med["newsapi_c10"]["S5"],
                             "POST /signin at bcrypt cost 10 (LoopBack's cost)"))
        if scen in med.get("pocketbase", {}):
            lines.append(row("pocketbase", scen, med["pocketbase"][scen]))
    for scen, m in med.get("pgbench", {}).items():
        us = m.get("cpu_us_per_request", {})
        lines.append(f"| {scen} | {m['label']} | {m['conns']} | {fmt(m.get('rps'))} | - | - | - |"
                     f" {'/'.join(map(str, m['non2xx']))} failed | - / {m['cpu']['postgres']} /"
                     f" {m['cpu']['load']} / {m['cpu']['other']} | - / {us.get('postgres', '-')} |"
                     f" - |")
    if any(m.get("rps_little") for t in med.values() for m in t.values()):
        lines.append("")
        lines.append("\\* sign-ins/s by Little's law (connections / mean latency): the server's rate"
                     " while busy, without wrk's idle tail after the last answer.")
        lines.append("")
    if "loopback" in med:
        lines.append("")
        lines.append("LoopBack anchor, same scenarios (S2: limit/skip pages, unordered; S3: ILIKE,"
                     " no full-text search; S5: bcryptjs cost 10):")
        lines.append("")
        lines.append("| scenario | conns | LoopBack req/s | LoopBack p50 ms | LoopBack p99 ms |"
                     " non-2xx | newsapi req/s | newsapi p99 ms | req/s ratio | node CPU % |"
                     " RSS max MB |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for scen in order:
            lm = med["loopback"].get(scen)
            nm = med.get("newsapi", {}).get(scen)
            if scen == "S5":
                nm = med.get("newsapi_c10", {}).get("S5", nm)
            if not lm:
                continue
            ratio = nm["rps"] / lm["rps"] if nm and lm.get("rps") else None
            lines.append(
                f"| {scen} | {lm['conns']} | {fmt(lm.get('rps'))} | {fmt(lm.get('p50_ms'), 2)} |"
                f" {fmt(lm.get('p99_ms'), 2)} | {'/'.join(map(str, lm['non2xx']))} |"
                f" {fmt(nm.get('rps') if nm else None)} | {fmt(nm.get('p99_ms') if nm else None, 2)}"
                f" | {fmt(ratio)}x | {lm['cpu']['server']} | {fmt(lm.get('rss_max_mb') or None)} |")
    lines.append("")
    for target, st in res.get("startup", {}).items():
        lines.append(f"start to ready, {target}: median {fmt(st['median_ms'])} ms over "
                     f"{len(st['runs'])} starts ({', '.join(fmt(r['ready_ms']) for r in st['runs'])}"
                     f" ms); RSS 1 s after start {fmt(st['median_rss_1s_mb'])} MB")
    for target, r in res.get("rss", {}).items():
        lines.append(f"RSS, {target}: idle after start {fmt(r.get('idle_fresh_mb'))} MB, max under"
                     f" load {fmt(r.get('max_under_load_mb'))} MB, peak (VmHWM) "
                     f"{fmt(r.get('hwm_mb'))} MB, idle after the runs {fmt(r.get('idle_after_mb'))}"
                     " MB")
    bc = res.get("bcrypt", {})
    if bc:
        lines.append("bcrypt, one verification on one core: " + ", ".join(
            f"cost {c}: {v['median_ms']:.1f} ms (ideal {NCPU} cores / that = "
            f"{NCPU / (v['median_ms'] / 1000):.2f}/s; CPU time {fmt(v.get('median_cpu_ms'))} ms)"
            for c, v in sorted(bc.items())))
    for f in res.get("failed", []):
        lines.append(f"FAILED run: round {f['round']} {f['target']} {f.get('scenario', '')}: "
                     f"{f['error'].strip().splitlines()[-1] if f['error'].strip() else '?'}")
    if not ("pocketbase" in med or "loopback" in med):  # else printed after the combined table
        lines.append("")
        lines += targets_table(res)
    return "\n".join(lines)
