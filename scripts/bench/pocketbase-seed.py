#!/usr/bin/env python3
"""Seeds the PocketBase anchor with the very news newsapi's benchmark database holds: reads
`title,body,created` as CSV on stdin (compare.sh pipes bench.news_text through psql's COPY, dates
already in PocketBase's text format, UTC) and writes them straight into its SQLite file, as the
anchor's own seed.py does (the server may run meanwhile: WAL mode, busy timeout). Every row gets
a fresh id of PocketBase's format (15 characters of [a-z0-9]) and AUTHOR as its author (the
relation must point at an existing user). The ids go to IDS_OUT, one a line.

  pocketbase-seed.py DATA_DB AUTHOR_ID IDS_OUT < news.csv

Standard library only. Rows are inserted in the CSV's order, so the seeded rowids are 1..N and
the rows a write scenario adds later are those with a larger rowid.
"""
import csv
import secrets
import sqlite3
import string
import sys

ALPHABET = string.ascii_lowercase + string.digits


def main():
    db, author, ids_out = sys.argv[1:4]
    csv.field_size_limit(10 * 1024 * 1024)
    ids, rows = set(), []
    for title, body, created in csv.reader(sys.stdin):
        rid = "".join(secrets.choice(ALPHABET) for _ in range(15))
        while rid in ids:
            rid = "".join(secrets.choice(ALPHABET) for _ in range(15))
        ids.add(rid)
        rows.append((rid, title, body, author, created, created))
    con = sqlite3.connect(db, timeout=30)
    con.execute("PRAGMA busy_timeout = 30000")
    with con:
        con.execute("DELETE FROM news")
        con.executemany("INSERT INTO news (id, title, body, author, created, updated) "
                        "VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute("ANALYZE news")
    con.close()
    with open(ids_out, "w") as f:
        f.write("".join(r[0] + "\n" for r in rows))
    print(f"pocketbase: {len(rows)} news")


if __name__ == "__main__":
    main()
