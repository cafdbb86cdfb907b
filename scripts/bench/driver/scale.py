#!/usr/bin/env python3
"""`make bench-scale` (scripts/bench/scale.sh seeds one database per size, starts one server on
each and calls this): the cost curve from 10^4 to 10^6 news. At every size the same requests:

  S1        GET /news/{id}, a random id of that size's table, CONNS (64) connections
  S2        GET /news?limit=20, the first page, CONNS connections
  S2deep    GET /news?limit=20&cursor=…, the page that starts at the middle of the feed
  S3c4      GET /news?q=<word>&limit=20, a random search word, 4 connections
  C         GET /news/count, unfiltered, 4 connections
  Cqfreq    … ?q=<the most frequent search word> (about 90 % of the rows match)
  Cqrare    … ?q=<the rarest search word that matches any row>
  Cauthor   … ?author_id=<the author of the newest item>
  Cafter    … ?created_after=<the middle item's date_created> (half the rows match)

Sizes are interleaved within each scenario and round (ROUNDS, default 1); medians over the rounds.
The wrk scripts are the benchmark's own (read-one.lua, list.lua with PAGES=1, search.lua) plus
get-path.lua for a fixed path; wrk, the /proc sampler and the medians are load.py's, sample.py's
and report.py's.

  driver/scale.py run    DIR   # DIR/<n>/target.json from scale.sh -> DIR/results.{json,md}
  driver/scale.py table  DIR   # the tables of DIR/results.json again

Count responses are opaque JSON: `count` (openapi.yaml, NewsCount) is recorded with any other
field the server adds (an `exact` or `estimated` flag, say) from one request made before the runs.
Standard library only; the plot is scale_plot.py's, in a venv of its own.
"""
import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import wrk  # noqa: E402
from report import medians  # noqa: E402
from run import cancel_leftovers  # noqa: E402
from sample import Sampler, drain, drain_postgres, env_int, quiet_gate  # noqa: E402

# name, label, wrk script, connections (None: CONNS), kind (what the targets below judge).
SCENARIOS = [
    ("S1", "GET /news/{id}, random ids", "read-one.lua", None, "read"),
    ("S2", "GET /news?limit=20, first page", "list.lua", None, "read"),
    ("S2deep", "GET /news?limit=20&cursor=<middle of the feed>", "get-path.lua", None, "read"),
    ("S3c4", "GET /news?q=<word>&limit=20, 4 connections", "search.lua", 4, "search"),
    ("C", "GET /news/count", "get-path.lua", 4, "count"),
    ("Cqfreq", "GET /news/count?q=<most frequent word>", "get-path.lua", 4, "count"),
    ("Cqrare", "GET /news/count?q=<rarest word that matches>", "get-path.lua", 4, "count"),
    ("Cauthor", "GET /news/count?author_id=<an author>", "get-path.lua", 4, "count"),
    ("Cafter", "GET /news/count?created_after=<middle date>", "get-path.lua", 4, "count"),
]
# The targets (issue 15, item 3).
READ_WITHIN = 0.20  # reads and pages: req/s within 20 % of the smallest size's
SEARCH_P99_MS = 20  # S3c4's p99 at the largest size
COUNT_MS = 50  # every count's p99 at the largest size


def psql(t, sql):
    r = subprocess.run(["psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", t["db_host"],
                        "-p", str(t["db_port"]), "-U", t["db_user"], "-d", t["db"], "-c", sql],
                       capture_output=True, text=True, timeout=600, check=True)
    return [line.split("\t") for line in r.stdout.splitlines()]


def get_json(t, path):
    req = urllib.request.Request(t["base"] + path, headers={"Authorization": f"Bearer {t['token']}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def answer(t, path):
    """The body of one GET, with its status when it is not 200 (a count past the server's
    statement timeout is a 503 problem, and is what the curve must show, not a failed run)."""
    try:
        return get_json(t, path)
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return {"status": err.code, "body": json.loads(body)}
        except ValueError:
            return {"status": err.code, "body": body.decode(errors="replace")[:200]}


def middle_cursor(t):
    """The cursor of the page that starts at the middle of the newest-first feed, made as the
    server makes next_cursor (src/domain/cursor.rs: URL-safe base64, no padding, of
    `v1|d|<date_created in µs>|<id>` of the last item before it), and checked once: the page must
    start with the row after that one. Also returns that row's date_created for Cafter."""
    half = t["news"] // 2
    rows = psql(t, "SELECT (extract(epoch FROM date_created) * 1000000)::bigint, id, "
                   "to_char(date_created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                   f"FROM news ORDER BY date_created DESC, id DESC OFFSET {half - 1} LIMIT 2")
    (micros, last_id, instant), (_, first_id, _) = rows
    raw = f"v1|d|{micros}|{last_id}".encode()
    cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    page = get_json(t, f"/news?limit=20&cursor={cursor}")
    got = page["items"][0]["id"] if page.get("items") else None
    if got != first_id:
        raise RuntimeError(f"the deep cursor does not lead where it should (first item {got}, expected "
                           f"{first_id}): has the cursor format of src/domain/cursor.rs changed?")
    return cursor, instant


def inputs(t):
    """The fixed paths of S2deep and the counts, for one size."""
    words = [w for w in open(t["files"]["words"]).read().split() if w]
    cursor, middle = middle_cursor(t)
    author = psql(t, "SELECT author_id FROM news ORDER BY date_created DESC, id DESC LIMIT 1")[0][0]
    q = urllib.parse.quote
    # The rarest search word that matches anything here (the seed's rarest ones may match nothing:
    # its bodies are drawn from 5 000 sentences, the same at every size).
    rare = next((w for w in reversed(words) if answer(t, f"/news/count?q={q(w)}").get("count", 0) > 0),
                words[-1])
    return {
        "S2deep": f"/news?limit=20&cursor={cursor}",
        "C": "/news/count",
        "Cqfreq": f"/news/count?q={q(words[0])}",
        "Cqrare": f"/news/count?q={q(rare)}",
        "Cauthor": f"/news/count?author_id={author}",
        "Cafter": f"/news/count?created_after={q(middle)}",
    }


def lua_env(t, scen):
    files = t["files"]
    env = {"TOKENS_FILE": files["tokens"]}
    if scen == "S1":
        env.update(IDS_FILE=files["ids"], PREFIX="/news/")
    elif scen == "S2":
        env.update(STYLE="cursor", PAGES="1")
    elif scen == "S3c4":
        env.update(WORDS_FILE=files["words"], STYLE="fts")
    else:
        env["PATH_ONE"] = t["paths"][scen]
    return env


def one_run(t, scen, rnd, resdir, quiet_pids):
    name, label, script, conns, _ = scen
    conns = conns or env_int("CONNS", 64)
    dur, warm = env_int("DUR", 10), env_int("WARM", 3)
    env = lua_env(t, name)
    tag = f"{resdir}/r{rnd}-{t['news']}-{name}"
    pg = {"pgbench": {"host": t["db_host"], "port": t["db_port"], "user": t["db_user"]}}
    quiet = quiet_gate(quiet_pids)
    if warm > 0:
        wrk(t["base"], script, conns, warm, env, tag + ".warmup.json", latency=False)
        drain(t["pid"])
        cancel_leftovers(pg, t["db"])
        drain_postgres()
    sampler = Sampler(t["pid"]).start()
    res = wrk(t["base"], script, conns, dur, env, tag + ".json")
    res.update(sampler.stop())
    drain(t["pid"])
    res["cancelled_queries_after"] = cancel_leftovers(pg, t["db"])
    drain_postgres()
    res.update(round=rnd, target=str(t["news"]), scenario=name, label=label, conns=conns, dur_s=dur,
               quiet_before=quiet)
    return res


def run(outdir):
    sizes = [int(s) for s in os.environ["SCALE_SIZES"].split(",")]
    targets = {}
    for n in sizes:
        with open(f"{outdir}/{n}/target.json") as f:
            t = json.load(f)
        t["token"] = open(t["files"]["tokens"]).readline().strip()
        t["paths"] = inputs(t)
        t["counts"] = {s: answer(t, p) for s, p in t["paths"].items() if s.startswith("C")}
        print(f"== {n} news: deep page {t['paths']['S2deep']}; counts "
              + ", ".join(f"{s} {c}" for s, c in t["counts"].items()), flush=True)
        targets[n] = t
    resdir = f"{outdir}/runs"
    os.makedirs(resdir, exist_ok=True)
    rounds = env_int("ROUNDS", 1)
    only = set(filter(None, os.environ.get("ONLY", "").split(",")))
    pids = [t["pid"] for t in targets.values()]
    runs, failed = [], []
    for rnd in range(1, rounds + 1):
        for scen in SCENARIOS:
            if only and scen[0] not in only:
                continue
            for n, t in targets.items():
                print(f"== round {rnd}/{rounds} {scen[0]} at {n} news: {scen[1]}", flush=True)
                try:
                    r = one_run(t, scen, rnd, resdir, pids)
                except Exception as err:  # one failed run must not lose the others
                    print(f"   FAILED: {err}", flush=True)
                    failed.append({"round": rnd, "size": n, "scenario": scen[0], "error": str(err)})
                    continue
                runs.append(r)
                print(f"   {r['rps']:.1f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms,"
                      f" non-2xx {r['non2xx']}/{r['requests']}, cpu {r['cpu_pct_of_one_core']},"
                      f" other-before {r['quiet_before']}", flush=True)
    res = {
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": os.environ.get("SOURCE_COMMIT"), "rounds": rounds, "dur_s": env_int("DUR", 10),
        "warm_s": env_int("WARM", 3), "conns": env_int("CONNS", 64), "cpus": os.cpu_count(),
        "loadavg_after": open("/proc/loadavg").read().split()[:3],
        "sizes": {str(n): {"seed": json.load(open(f"{outdir}/{n}/seed.json")),
                           "seed_s": t.get("seed_s"), "paths": t["paths"], "counts": t["counts"]}
                  for n, t in targets.items()},
        "medians": medians(runs), "failed": failed, "runs": runs,
    }
    res["targets"] = check_targets(res)
    with open(f"{outdir}/results.json", "w") as f:
        json.dump(res, f, indent=1)
    text = table(res)
    with open(f"{outdir}/results.md", "w") as f:
        f.write(text + "\n")
    print()
    print(text)


def ratio(med, sizes, scen, n, key):
    first = med.get(str(sizes[0]), {}).get(scen, {}).get(key)
    here = med.get(str(n), {}).get(scen, {}).get(key)
    return here / first if first and here is not None else None


def little_ms(m):
    """Mean latency by Little's law (connections / req/s). wrk leaves out the requests still
    running when a run ends, so when a few take seconds (a count over most of a million rows)
    its percentiles miss them; this figure does not."""
    return m["conns"] / m["rps"] * 1000 if m.get("rps") else None


def latency_target(name, top, m, goal):
    """A p99 goal, judged on wrk's p99 and, so that unfinished slow requests cannot pass it, on
    the mean by Little's law too; a run with no answer at all fails it."""
    little = little_ms(m)
    if not m.get("requests") or not any(m["requests"]) or little is None:
        return {"target": f"{name} p99 at {top} news", "value": "no answer within the run",
                "goal": f"< {goal} ms", "met": False}
    value = f"{m['p99_ms']:.2f} ms"
    if little > m["p99_ms"]:
        value += f" (but conns / req/s = {little:.0f} ms: slower requests did not finish in the run)"
    return {"target": f"{name} p99 at {top} news", "value": value, "goal": f"< {goal} ms",
            "met": m["p99_ms"] < goal and little < goal}


def check_targets(res):
    med = res["medians"]
    sizes = [int(n) for n in res["sizes"]]
    top = str(sizes[-1])
    out = []
    for name, _, _, _, kind in SCENARIOS:
        if kind == "read":
            # At every size: the reads and pages stay within 20 % of their figure at the smallest.
            for n in sizes[1:]:
                r = ratio(med, sizes, name, n, "rps")
                if r is not None:
                    out.append({"target": f"{name} req/s at {n} vs {sizes[0]} news", "value": f"{r:.3f}x",
                                "goal": f">= {1 - READ_WITHIN:.2f}x", "met": r >= 1 - READ_WITHIN})
            continue
        m = med.get(top, {}).get(name)
        if not m:
            continue
        out.append(latency_target(name, top, m, SEARCH_P99_MS if kind == "search" else COUNT_MS))
    return out


def fmt(v, nd=1):
    """A number with thin groups of thousands (10 000), or '-'."""
    return "-" if v is None else f"{v:,.{nd}f}".replace(",", " ")


def table(res):
    med = res["medians"]
    sizes = [int(n) for n in res["sizes"]]
    lines = [
        f"newsapi cost curve — {res['finished_utc']}, commit {res.get('commit')}; {res['rounds']} round(s) "
        f"of {res['dur_s']} s per run ({res['warm_s']} s warm-up), sizes interleaved, medians; "
        f"load average after: {res['loadavg_after']}",
        "",
        "| news | database ready in (seeded, or reused) | table + indexes | avg body chars |",
        "|---|---|---|---|",
    ]
    for n in sizes:
        s = res["sizes"][str(n)]
        lines.append(f"| {fmt(n, 0)} | {fmt(s.get('seed_s'), 0)} s | {s['seed'].get('news_table_mb')} MB |"
                     f" {s['seed'].get('avg_body_chars')} |")
    lines += [
        "",
        f"Ratios (×) are to the figure at {fmt(sizes[0], 0)} news (req/s: higher is better; p99: lower is"
        " better).",
        "",
        "| scenario | what | conns | news | req/s | × | p50 ms | p99 ms | × | mean ms: wrk / conns÷req/s |"
        " non-2xx / requests | CPU µs per request: server / pg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label, _, _, _ in SCENARIOS:
        for n in sizes:
            m = med.get(str(n), {}).get(name)
            if not m:
                continue
            us = m.get("cpu_us_per_request", {})
            nonok = "/".join(map(str, m["non2xx"])) + " / " + "/".join(
                str(x) for x in m["requests"] if x is not None)
            lines.append(
                f"| {name} | {label} | {m['conns']} | {fmt(n, 0)} | {fmt(m.get('rps'))} |"
                f" {fmt(ratio(med, sizes, name, n, 'rps'), 2)} | {fmt(m.get('p50_ms'), 2)} |"
                f" {fmt(m.get('p99_ms'), 2)} | {fmt(ratio(med, sizes, name, n, 'p99_ms'), 2)} |"
                f" {fmt(m.get('mean_ms'), 2)} / {fmt(little_ms(m), 2)} | {nonok} |"
                f" {us.get('server', '-')} / {us.get('postgres', '-')} |")
    lines += ["", "What each count answered (one request before the runs):", ""]
    for n in sizes:
        c = res["sizes"][str(n)]["counts"]
        lines.append(f"- {fmt(n, 0)} news: " + "; ".join(
            f"{s} {json.dumps(v, separators=(',', ':'))}" for s, v in c.items()))
    for f in res.get("failed", []):
        lines.append(f"FAILED run: round {f['round']} {f['size']} {f['scenario']}: "
                     f"{f['error'].strip().splitlines()[-1] if f['error'].strip() else '?'}")
    lines += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "table"):
        sys.exit(__doc__)
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        with open(f"{sys.argv[2]}/results.json") as f:
            res = json.load(f)
        res["targets"] = check_targets(res)
        print(table(res))


if __name__ == "__main__":
    main()
