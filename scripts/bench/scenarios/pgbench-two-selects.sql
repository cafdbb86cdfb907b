-- pgbench script: two primary-key SELECTs per transaction, as `pgbench -S` makes one. The driver
-- runs it as P64x2: the most a two-query request (its session check in a statement of its own,
-- then its read; every authenticated request but GET /news/{id}, which makes one) can reach
-- against this PostgreSQL. The database is initialised with `pgbench -i -s 10` (1 000 000 accounts).
\set aid random(1, 1000000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\set aid2 random(1, 1000000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid2;
