-- pgbench script: two primary-key SELECTs per transaction, as `pgbench -S` makes one. S1 makes two
-- queries per request (the session check behind the bearer token, then the news item), so this is
-- the most a two-query request can reach against this PostgreSQL. The database is initialised
-- with `pgbench -i -s 10` (1 000 000 accounts).
\set aid random(1, 1000000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\set aid2 random(1, 1000000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid2;
