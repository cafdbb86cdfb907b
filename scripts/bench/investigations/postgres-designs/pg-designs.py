#!/usr/bin/env python3
"""PostgreSQL alone, with the statements the server sends and with the ones it could send
instead: how far each design could go on this machine, whatever the Rust side costs. Runs
pgbench (per-transaction log, for percentiles) with the scripts in pgbench/ beside this file,
variants interleaved round by round; prints medians. Called by pg-designs.sh.

Experiments:
  S1  s1-now (4 statements: recycle check + session, recycle check + news) vs s1-fast-recycle
      (2) vs s1-one-statement (1); pgbench -M prepared, CONNS clients
  S4  the insert with the full-text GIN index as migrated (fastupdate on) vs fastupdate off, vs
      eight rows per multi-row INSERT (batched creates), and
      into the same table without the stored tsvector and its GIN index
  S3  the search query over an expression GIN index on to_tsvector(title || ' ' || body) (the
      first migration's design) vs the stored tsvector column with its own GIN index (the
      current one); -M simple, so that every query is planned as the server's are (its list
      queries are not in diesel's statement cache)
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.abspath(os.path.join(HERE, "..", ".."))  # scripts/bench
sys.path.insert(0, os.path.join(BENCH, "driver"))
from sample import Sampler, env_int  # noqa: E402

ROOT = os.path.abspath(os.path.join(BENCH, "..", ".."))
OUT = os.path.join(ROOT, "target", "bench", "pg-designs")
PG = ["-h", os.environ["DB_HOST"], "-p", os.environ["DB_PORT"], "-U", os.environ["DB_USER"]]
DB = os.environ["DESIGN_DB"]
DUR = env_int("DUR", 10)
WARM = env_int("WARM", 3)
ROUNDS = env_int("ROUNDS", 3)
CONNS = env_int("CONNS", 64)


def psql(sql, db=DB):
    """Runs each `;`-separated statement on its own (VACUUM cannot share a transaction)."""
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *PG, "-d", db]
    for stmt in filter(None, (x.strip() for x in sql.split(";"))):
        cmd += ["-c", stmt]
    subprocess.run(cmd, check=True, capture_output=True, timeout=1200)


def pgbench(name, scripts, mode, dur, log, db=DB):
    prefix = os.path.join(OUT, name)
    for f in glob.glob(prefix + ".*"):
        os.remove(f)
    cmd = ["pgbench", *PG, "-M", mode, "-c", str(CONNS), "-j", "2", "-T", str(dur), "-n"]
    for s in scripts:
        cmd += ["-f", s]
    if log:
        cmd += ["-l", "--log-prefix", prefix]
    cmd.append(db)
    s = Sampler(0).start()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + 300)
    cpu = s.stop()["cpu_pct_of_one_core"]
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    tps = next(float(l.split()[2]) for l in r.stdout.splitlines()
               if l.startswith("tps = ") and "without initial" in l)
    res = {"tps": tps, "cpu": cpu}
    if log:
        lat = []
        for f in glob.glob(prefix + ".*"):
            with open(f) as fh:
                lat += [int(line.split()[2]) for line in fh]
            os.remove(f)
        lat.sort()
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
        res.update(p50_ms=pick(0.5), p90_ms=pick(0.9), p99_ms=pick(0.99), n=len(lat))
    return res


def experiment(title, variants, mode):
    """variants: [(name, [scripts], setup_sql or None, teardown_sql or None[, rows per
    transaction[, database]])]: the table's tps and CPU are per row."""
    print(f"== {title}", flush=True)
    runs = []
    for rnd in range(1, ROUNDS + 1):
        for name, scripts, before, after, *rest in variants:
            db = rest[1] if len(rest) > 1 else DB
            if before:
                psql(before, db)
            pgbench(name, scripts, mode, WARM, log=False, db=db)
            r = pgbench(name, scripts, mode, DUR, log=True, db=db)
            if after:
                psql(after, db)
            r.update(variant=name, round=rnd)
            runs.append(r)
            print(f"   round {rnd} {name:>22}: {r['tps']:8.0f} tps  p50 {r['p50_ms']:7.2f}  p99 "
                  f"{r['p99_ms']:7.2f} ms  cpu pg {r['cpu']['postgres']} pgbench "
                  f"{r['cpu']['load']} other {r['cpu']['other']}", flush=True)
    rows = []
    print(f"\n{title}: medians over {ROUNDS} rounds, {CONNS} clients, {DUR} s each")
    print("| variant | rows/s | vs first | p50 ms | p99 ms | PostgreSQL CPU µs/row |")
    print("|---|---|---|---|---|---|")
    first = None
    for name, *rest in variants:
        per = rest[3] if len(rest) > 3 else 1
        rs = [r for r in runs if r["variant"] == name]
        med = lambda k: statistics.median(r[k] for r in rs)
        tps = med("tps") * per
        first = first or tps
        pg_us = statistics.median(r["cpu"]["postgres"] for r in rs) / 100 / tps * 1e6
        row = {"variant": name, "tps": tps, "tps_all": [r["tps"] for r in rs],
               "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"), "pg_us": pg_us}
        rows.append(row)
        print(f"| {name} | {tps:.0f} | {tps / first * 100 - 100:+.0f}% | {row['p50_ms']:.2f} |"
              f" {row['p99_ms']:.2f} | {pg_us:.0f} |")
    print(flush=True)
    return {"title": title, "rows": rows, "runs": runs}


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(filter(None, os.environ.get("ONLY", "S1,S4,S3").split(",")))
    p = lambda f: os.path.join(HERE, "pgbench", f)
    results = []
    if "S1" in only:
        results.append(experiment("S1: statements per GET /news/{id}", [
            ("s1-now (4 statements)", [p("s1-now.sql")], None, None),
            ("s1-fast-recycle (2)", [p("s1-fast-recycle.sql")], None, None),
            ("s1-one-statement (1)", [p("s1-one-statement.sql")], None, None),
        ], "prepared"))
    if "S4" in only:
        # Every GIN index of news, as the migrations made them.
        gin = subprocess.run(
            ["psql", "-X", "-At", *PG, "-d", DB, "-c",
             "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am"
             " am ON am.oid = c.relam WHERE i.indrelid = 'news'::regclass AND am.amname = 'gin'"],
            check=True, capture_output=True, text=True).stdout.split()
        alter = lambda opt: "; ".join(f"ALTER INDEX {g} SET (fastupdate = {opt})" for g in gin)
        cleanup = "DELETE FROM news WHERE version = 7; VACUUM news"
        # What full-text search costs an insert: news as migrated but for the stored tsvector and
        # its GIN index (the LoopBack anchor's table has neither).
        psql("CREATE TABLE IF NOT EXISTS bench.news_plain (LIKE news INCLUDING DEFAULTS"
             " INCLUDING CONSTRAINTS); ALTER TABLE bench.news_plain DROP COLUMN IF EXISTS search;"
             " ALTER TABLE bench.news_plain ADD PRIMARY KEY (id), ADD FOREIGN KEY (author_id)"
             " REFERENCES users (id) ON DELETE CASCADE;"
             " CREATE INDEX ON bench.news_plain (date_created, id);"
             " CREATE INDEX ON bench.news_plain (author_id, date_created, id);"
             " INSERT INTO bench.news_plain SELECT id, title, body, date_created, date_updated,"
             " author_id, version FROM news; VACUUM ANALYZE bench.news_plain")
        plain_cleanup = "DELETE FROM bench.news_plain WHERE version = 7; VACUUM bench.news_plain"
        results.append(experiment(f"S4: INSERT with the full-text GIN index ({', '.join(gin)})", [
            ("gin fastupdate=on (as migrated)", [p("s4-insert.sql")], alter("on"), cleanup),
            ("gin fastupdate=off", [p("s4-insert.sql")], alter("off"), cleanup),
            ("no tsvector, no GIN index", [p("s4-insert-plain.sql")], None, plain_cleanup),
            ("8 rows per INSERT (batched)", [p("s4-insert-batch8.sql")], alter("on"), cleanup, 8),
        ], "prepared"))
        psql("; ".join(f"ALTER INDEX {g} RESET (fastupdate)" for g in gin))
    if "S3" in only:
        words = [w.strip() for w in open(os.path.join(ROOT, "target", "bench", "words.txt"))]
        sdir = os.path.join(OUT, "s3-scripts")
        os.makedirs(sdir, exist_ok=True)
        cols = ("id, title, body, date_created, date_updated, author_id, version")
        expr, stored = [], []
        for i, w in enumerate(words):
            for kind, cond, lst in (
                    ("expr", "to_tsvector('english', title || ' ' || body)", expr),
                    ("stored", "search", stored)):
                f = os.path.join(sdir, f"{kind}-{i}.sql")
                with open(f, "w") as fh:
                    fh.write(f"SELECT {cols} FROM news WHERE TRUE AND {cond} @@ "
                             f"websearch_to_tsquery('english', '{w}') ORDER BY date_created DESC,"
                             f" id DESC LIMIT 21;\n")
                lst.append(f)
        # Both ways to search: the stored column (as migrated now) and, made here, the expression
        # index the first migration had.
        psql("SET maintenance_work_mem = '256MB'; CREATE INDEX IF NOT EXISTS news_fulltext_idx ON"
             " news USING gin (to_tsvector('english', title || ' ' || body)); VACUUM ANALYZE news")
        results.append(experiment("S3: search over the expression index vs a stored tsvector", [
            ("expression index (first design)", expr, None, None),
            ("stored tsvector column (now)", stored, None, None),
        ], "simple"))
    if only & {"RUM-S3", "RUM-S4"}:
        results += rum(os.environ["RUM_DB"], only)
    with open(os.path.join(OUT, f"pg-designs-{time.strftime('%Y%m%dT%H%M%S')}.json"), "w") as f:
        json.dump({"dur_s": DUR, "rounds": ROUNDS, "conns": CONNS, "results": results}, f,
                  indent=1)


def rum(rum_db, only):
    """GIN (DESIGN_DB, as migrated) against RUM (rum_db: the same rows, news_search_idx replaced
    by a RUM index with date_created attached): S4's insert (RUM-S4), and S3's search (RUM-S3)
    of a first page and of the pages after the 1st and the 10th (cursors taken from DESIGN_DB).
    Two RUM forms: the list's exact order (distance, then date_created and id: PostgreSQL 15
    cannot take it from the index, whose order must be the whole ORDER BY) and the distance
    alone (the index's order, but ties on date_created in no defined order)."""
    cols = "id, title, body, date_created, date_updated, author_id, version"
    words = subprocess.run(
        ["psql", "-X", "-At", *PG, "-d", DB, "-c",
         "SELECT word FROM bench.search_words ORDER BY i"],
        check=True, capture_output=True, text=True).stdout.split()
    sdir = os.path.join(OUT, "rum-scripts")
    os.makedirs(sdir, exist_ok=True)
    q = "search @@ websearch_to_tsquery('english', '{w}')"
    newest = "'9999-12-31 23:59:59.999999+00'::timestamptz"
    scripts = {"gin": [], "rum": [], "rum-distance": []}
    for i, w in enumerate(words):
        cursors = [None]
        for skip in (19, 199):
            row = subprocess.run(
                ["psql", "-X", "-At", "-F", ",", *PG, "-d", DB, "-c",
                 f"SELECT date_created, id FROM news WHERE {q.format(w=w)} ORDER BY date_created"
                 f" DESC, id DESC OFFSET {skip} LIMIT 1"],
                check=True, capture_output=True, text=True).stdout.strip()
            if row:
                d, nid = row.split(",")
                cursors.append((f"'{d}'::timestamptz", f"'{nid}'::uuid"))
        for j, c in enumerate(cursors):
            after = "" if c is None else f" AND (date_created, id) < ({c[0]}, {c[1]})"
            anchor = newest if c is None else c[0]
            for kind, order in (("gin", "date_created DESC, id DESC"),
                                ("rum", f"date_created <=| {anchor}, date_created DESC, id DESC"),
                                ("rum-distance", f"date_created <=| {anchor}")):
                f = os.path.join(sdir, f"{kind}-{i}-{j}.sql")
                with open(f, "w") as fh:
                    fh.write(f"SELECT {cols} FROM news WHERE {q.format(w=w)}{after} ORDER BY"
                             f" {order} LIMIT 21;\n")
                scripts[kind].append(f)
    p = lambda f: os.path.join(HERE, "pgbench", f)
    cleanup = "DELETE FROM news WHERE version = 7; VACUUM news"
    results = []
    if "RUM-S3" in only:
        results.append(experiment("S3: search pages (1st, after 20, after 200), GIN vs RUM", [
            ("gin (as migrated)", scripts["gin"], None, None, 1, DB),
            ("rum, exact order", scripts["rum"], None, None, 1, rum_db),
            ("rum, distance only", scripts["rum-distance"], None, None, 1, rum_db),
        ], "simple"))
    if "RUM-S4" in only:
        results.append(experiment("S4: INSERT, GIN vs RUM", [
            ("gin (as migrated)", [p("s4-insert.sql")], None, cleanup, 1, DB),
            ("rum, date attached", [p("s4-insert.sql")], None, cleanup, 1, rum_db),
        ], "prepared"))
    return results


if __name__ == "__main__":
    main()
