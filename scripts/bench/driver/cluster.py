#!/usr/bin/env python3
"""`make bench-cluster` (scripts/bench/cluster.sh prepares the databases and calls this): S1 and S2
of the benchmark (scenarios.py's wrk scripts, unchanged) against

  nginx-1, nginx-2, nginx-3  Debian's nginx with deploy/nginx.conf in front of 1, 2 or 3 replicas
                             (the same configuration; only the upstream list differs)
  direct                     replica 0 itself, no nginx: nginx's own cost, and the baseline of
  read-replica               the same server with DATABASE_READ_URL set to the streaming standby

All replicas run the release binary with the benchmark's settings (lib.sh's server_env: RUST_LOG
info, pool 16) on the same primary. ROUNDS rounds, points interleaved within each; medians. CPU by
group from /proc: the servers (all of ours), nginx (master and workers), PostgreSQL (our primary
and standby, every backend), wrk, and everything else on the machine. Then, once per scenario, the
transactions each database committed per request (pg_stat_database) straight to one replica and
to the read-replica server: where the reads went.

Environment (from cluster.sh): PRIMARY_URL, STANDBY_URL, OUT, BIN, NGINX_BIN, PG_PIDFILES, and
DUR, WARM, ROUNDS, CONNS, QUIET_MAX and the servers' settings. Standard library only.
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import BENCH_DIR, wrk  # noqa: E402
from sample import HZ, Sampler, all_pids, env_int, proc_stat, quiet_gate  # noqa: E402
from scenarios import SCENARIOS, lua_env  # noqa: E402

ROOT = pathlib.Path(BENCH_DIR).parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
# Shared with the cluster suite (tests/cluster/harness.py).
from procs import Nginx, die_with_parent, free_port, stop, wait_ready  # noqa: E402

OUT = pathlib.Path(os.environ["OUT"])
SCEN = {s[0]: s for s in SCENARIOS}
POINTS = [
    ("nginx-1", "nginx, 1 replica"),
    ("nginx-2", "nginx, 2 replicas"),
    ("nginx-3", "nginx, 3 replicas"),
    ("direct", "1 replica, no nginx"),
    ("read-replica", "1 replica, no nginx, DATABASE_READ_URL = streaming standby"),
]


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return int(s[s.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError):
        return None


class Server:
    def __init__(self, name, extra):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        work = OUT / name
        (work / "mail").mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, DATABASE_URL=os.environ["PRIMARY_URL"], LISTEN_ADDR=f"127.0.0.1:{self.port}",
                        TRUSTED_PROXIES="127.0.0.1", MAIL_OUTBOX_DIR=str(work / "mail"), **extra)
        if "DATABASE_READ_URL" not in extra:
            self.env.pop("DATABASE_READ_URL", None)
        self.log = open(work / "server.log", "wb")
        self.proc = subprocess.Popen([os.environ["BIN"]], cwd=work, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent)
        self.pid = self.proc.pid

    def wait_ready(self):
        wait_ready(self.proc, self.url + "/readyz", f"{self.name} (see {OUT / self.name / 'server.log'})")

    def stop(self):
        stop(self.proc)


def start_nginx(name, ports):
    """deploy/nginx.conf in front of `ports`, as the cluster suite runs it; an earlier run's logs
    removed first (the requests per upstream are counted from its access log)."""
    for old in ("access.log", "error.log"):
        (OUT / name / old).unlink(missing_ok=True)
    return Nginx(OUT / name, ports).start()


def nginx_pids(nginx):
    """nginx's master and its workers."""
    return {nginx.proc.pid} | {p for p in all_pids() if ppid_of(p) == nginx.proc.pid}


def postgres_pids():
    """Our primary's and standby's postmasters and all their children (backends, walsender…)."""
    masters = set()
    for f in os.environ["PG_PIDFILES"].split(":"):
        try:
            masters.add(int(open(f).readline()))
        except (OSError, ValueError):
            pass
    return masters | {p for p in all_pids() if ppid_of(p) in masters}


def xacts(url):
    """Transactions committed so far in the benchmark database of `url`."""
    r = subprocess.run(["psql", "-X", "-At", url, "-c",
                        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"],
                       capture_output=True, text=True, timeout=30, check=True)
    return int(r.stdout.strip())


def idle(pids, limit=10.0, max_secs=10):
    """Waits until the given processes together use under `limit` % of one core; returns how
    long it waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_secs:
        a = {p: proc_stat(p) for p in pids}
        time.sleep(0.5)
        used = sum((proc_stat(p) or (0, 0))[1] - (a[p] or (0, 0))[1] for p in pids)
        if used / HZ / 0.5 * 100 < limit:
            break
    return round(time.monotonic() - t0, 1)


def where_reads_go(base, setup, conns, dur, out):
    """Transactions each database committed per request of S1 and S2 against `base`. PostgreSQL
    flushes a backend's counters at most once a second and an idle one's within 10 s, so this waits
    11 s before each reading (which is why it is done once, not in every run)."""
    res = {}
    for scen in ("S1", "S2"):
        time.sleep(11)
        x0 = (xacts(os.environ["PRIMARY_URL"]), xacts(os.environ["STANDBY_URL"]))
        r = wrk(base, SCEN[scen][2], conns, dur, lua_env(setup, "newsapi", scen), str(out) + f"-{scen}.json")
        time.sleep(11)
        x1 = (xacts(os.environ["PRIMARY_URL"]), xacts(os.environ["STANDBY_URL"]))
        n = max(1, r["requests"])
        res[scen] = {"requests": r["requests"], "primary": round((x1[0] - x0[0]) / n, 2),
                     "standby": round((x1[1] - x0[1]) / n, 2)}
    return res


def main():
    dur, warm, rounds = env_int("DUR", 5), env_int("WARM", 2), env_int("ROUNDS", 3)
    conns = env_int("CONNS", 64)
    started = []
    try:
        replicas = [Server(f"replica-{i}", {}) for i in range(3)]
        started += replicas
        rr = Server("read-replica", {"DATABASE_READ_URL": os.environ["STANDBY_URL"]})
        started.append(rr)
        for s in started:
            s.wait_ready()
        nginxes = {n: start_nginx(f"nginx-{n}", [r.port for r in replicas[:n]]) for n in (1, 2, 3)}
        started += nginxes.values()
        print("servers: " + ", ".join(f"{s.name} pid {s.pid} {s.url}" for s in started if isinstance(s, Server)),
              flush=True)

        subprocess.run([sys.executable, os.path.join(BENCH_DIR, "accounts.py"), "--base", replicas[0].url,
                        "--style", "newsapi", "--prefix", "signer", "--count", "16",
                        "--creds", str(OUT / "creds.tsv"), "--tokens", str(OUT / "tokens.txt")], check=True)
        files = {"ids": str(OUT / "ids.txt"), "tokens": str(OUT / "tokens.txt")}
        setup = {"targets": {"newsapi": {"files": files}}}
        bases = {f"nginx-{n}": x.url for n, x in nginxes.items()}
        bases.update({"direct": replicas[0].url, "read-replica": rr.url})
        # Sanity: a token reads a seeded item at every point; the read replica's server knows it has one.
        item = open(files["ids"]).readline().strip()
        token = open(files["tokens"]).readline().strip()
        for point, base in bases.items():
            req = urllib.request.Request(f"{base}/news/{item}", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200, (point, r.status)
        with urllib.request.urlopen(rr.url + "/metrics", timeout=10) as r:
            assert b"db_replica_up 1" in r.read(), "the read-replica server does not see its replica up"

        all_nginx = set().union(*(nginx_pids(x) for x in nginxes.values()))
        servers = {s.pid for s in started if isinstance(s, Server)}
        mine = servers | all_nginx
        runs = []
        for rnd in range(1, rounds + 1):
            for scen in ("S1", "S2"):
                _, label, script, _, _ = SCEN[scen]
                env = lua_env(setup, "newsapi", scen)
                for point, _ in POINTS:
                    base = bases[point]
                    tag = OUT / "runs" / f"r{rnd}-{point}-{scen}"
                    tag.parent.mkdir(exist_ok=True)
                    quiet = quiet_gate(sorted(mine))
                    if warm > 0:
                        wrk(base, script, conns, warm, env, str(tag) + ".warmup.json", latency=False)
                    pg = postgres_pids()
                    res_idle = idle(mine | pg)
                    groups = {p: "servers" for p in servers}
                    groups.update({p: "nginx" for p in all_nginx})
                    groups.update({p: "postgres" for p in pg})
                    # wrk by name; everything else (the main PostgreSQL cluster too) is "other".
                    sampler = Sampler(0, groups, {"wrk": "wrk"}).start()
                    res = wrk(base, script, conns, dur, env, str(tag) + ".json")
                    res["cpu_pct_of_one_core"] = sampler.stop()["cpu_pct_of_one_core"]
                    res.update(round=rnd, point=point, scenario=scen, label=label, conns=conns, dur_s=dur,
                               quiet_before=quiet, idle_wait_s=res_idle)
                    runs.append(res)
                    print(f"r{rnd} {scen} {point:12} {res['rps']:8.1f} req/s p50 {res['p50_ms']:6.2f} "
                          f"p99 {res['p99_ms']:6.2f} ms non-2xx {res['non2xx']}/{res['requests']} "
                          f"cpu {res['cpu_pct_of_one_core']} other-before {quiet['other_pct']}", flush=True)
                    idle(mine | pg)
        print("== where the reads go: transactions per request on the primary and the standby", flush=True)
        routes = {p: where_reads_go(bases[p], setup, conns, dur, OUT / "runs" / f"xacts-{p}")
                  for p in ("direct", "read-replica")}
        print(routes, flush=True)
        # Every request of the runs through nginx was served by some replica: count them per replica.
        served = {}
        for n, x in nginxes.items():
            lines = (x.prefix / "access.log").read_text(errors="replace").splitlines()
            ups = {}
            for line in lines:
                u = line.split("upstream=", 1)[1].split()[0] if "upstream=" in line else "?"
                ups[u] = ups.get(u, 0) + 1
            served[f"nginx-{n}"] = ups
    finally:
        for s in reversed(started):
            s.stop()
    report(runs, served, routes, dur, warm, rounds, conns)


def report(runs, served, routes, dur, warm, rounds, conns):
    med = {}
    for point, _ in POINTS:
        for scen in ("S1", "S2"):
            rs = [r for r in runs if r["point"] == point and r["scenario"] == scen]
            if not rs:
                continue
            m = {k: round(statistics.median(r[k] for r in rs), 2) for k in ("rps", "p50_ms", "p99_ms")}
            m["rps_rounds"] = [round(r["rps"]) for r in rs]
            m["p99_rounds"] = [round(r["p99_ms"], 1) for r in rs]
            m["non2xx"] = sum(r["non2xx"] for r in rs)
            m["socket_errors"] = sum(r[k] for r in rs for k in ("connect_err", "read_err", "write_err", "timeout_err"))
            m["cpu"] = {g: round(statistics.median(r["cpu_pct_of_one_core"][g] for r in rs), 1)
                        for g in rs[0]["cpu_pct_of_one_core"]}
            m["other_before"] = [r["quiet_before"]["other_pct"] for r in rs]
            med[f"{point} {scen}"] = m
    res = {"finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "commit": os.environ.get("SOURCE_COMMIT"), "dur_s": dur, "warm_s": warm, "rounds": rounds,
           "conns": conns, "seed_news": int(os.environ.get("SEED_NEWS", 0)),
           "cpus": os.cpu_count(), "loadavg_after": open("/proc/loadavg").read().split()[:3],
           "medians": med, "served_by_upstream": served, "xacts_per_request": routes, "runs": runs}
    (OUT / "results.json").write_text(json.dumps(res, indent=1))
    lines = [
        f"{rounds} rounds of {dur} s (after {warm} s of warm-up) per point, {conns} connections, "
        f"medians; {res['finished_utc']}, commit {res['commit']}, {res['seed_news']} news.",
        "",
        "| point | scenario | req/s | (rounds) | p50 ms | p99 ms | (p99 rounds) | non-2xx | "
        "CPU % of one core: servers / nginx / pg / wrk / other |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for point, what in POINTS:
        for scen in ("S1", "S2"):
            m = med.get(f"{point} {scen}")
            if not m:
                continue
            c = m["cpu"]
            lines.append(
                f"| {point} ({what}) | {scen} | {m['rps']:.0f} | {' / '.join(map(str, m['rps_rounds']))} | "
                f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {' / '.join(map(str, m['p99_rounds']))} | "
                f"{m['non2xx']} | {c['servers']} / {c['nginx']} / {c['postgres']} / {c['wrk']} / {c['other']} |")
    lines.append("")
    lines.append("Transactions per request (pg_stat_database, one extra run each): "
                 + "; ".join(f"{p} {sc}: primary {v['primary']}, standby {v['standby']}"
                             for p, x in routes.items() for sc, v in x.items()))
    lines.append("")
    lines.append("Requests per upstream in nginx's access logs: "
                 + "; ".join(f"{k}: {v}" for k, v in served.items()))
    text = "\n".join(lines)
    (OUT / "results.md").write_text(text + "\n")
    print()
    print(text)


if __name__ == "__main__":
    main()
