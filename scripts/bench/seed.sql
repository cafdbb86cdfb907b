-- Benchmark seed for newsapi: run with psql against a freshly migrated database.
--
--   psql -v users=10000 -v news=100000 -f scripts/bench/seed.sql "$BENCH_DATABASE_URL"
--
-- Everything is generated in SQL (INSERT … SELECT generate_series), straight into the tables the
-- migrations made. The text is made of pseudo-words ("kalomi", "ruvesa", …) drawn from a Zipf-like
-- distribution over a 20 000-word vocabulary, so that full-text queries match anything from half
-- the rows (frequent words) to a few dozen (rare ones), as in real prose. Lengths are those of
-- short news items: titles of 4–11 words (~30–80 characters), bodies of 8–30 sentences
-- (~0.8–3 KB, ~1.9 KB on average).
--
-- The generated texts stay in schema `bench` (bench.news_text), so that the LoopBack anchor can be
-- seeded with exactly the same rows (scripts/bench/compare.sh copies them with COPY).
--
-- Users made here have no password: only the few that sign in need one, and those are created
-- through POST /signup by the bench script, so that their hashes are the server's own.

\set ON_ERROR_STOP on
\timing off
SET client_min_messages = warning;
SELECT setseed(0.42) AS seeded \gset

DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

-- Vocabulary: rank 1 is the most frequent word. Three syllables out of 32 (32^3 distinct words),
-- chosen through a bijection of the rank so that neighbouring ranks do not share syllables.
CREATE TABLE bench.vocab AS
SELECT r AS rank,
       s[1 + w % 32] || s[1 + (w / 32) % 32] || s[1 + (w / 1024) % 32] AS word
FROM generate_series(1, 20000) AS r,
     LATERAL (SELECT (r * 7919) % 32768 AS w) AS scrambled,
     (SELECT ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','ba','de','fi','go','hu','ja','ke','li',
                   'mo','na','pe','ri','so','tu','va','we','xi','yo','za','bo','ce','da','fu','ge'] AS s) AS syl;
CREATE UNIQUE INDEX ON bench.vocab (rank);

-- 5 000 sentences of 8–20 words; word ranks follow density ~ 1/rank (Zipf).
CREATE TABLE bench.sentence_words AS
SELECT s.id AS sid, w.n,
       least(20000, greatest(1, floor(exp(random() * ln(20000)))::int)) AS rank
FROM generate_series(1, 5000) AS s(id),
     LATERAL generate_series(1, 8 + floor(random() * 13)::int + s.id * 0) AS w(n);

CREATE TABLE bench.sentences AS
SELECT sw.sid AS id,
       string_agg(v.word, ' ' ORDER BY sw.n) AS words
FROM bench.sentence_words sw
JOIN bench.vocab v USING (rank)
GROUP BY sw.sid;
CREATE UNIQUE INDEX ON bench.sentences (id);

-- Users: 10 000 by default, with one live session each (the per-request session check then looks
-- rows up in a table of realistic size). Their emails are ASCII in lower case, their own canonical
-- form (src/domain/user.rs, canonical_email), set here: otherwise the server's first start gives
-- each its canonical email in an UPDATE of its own (over a minute on a busy machine).
INSERT INTO users (id, email, email_canonical, name, role, created_at)
SELECT gen_random_uuid(),
       'user' || n || '@bench.example',
       'user' || n || '@bench.example',
       'Bench User ' || n,
       'user',
       now() - n * interval '1 hour'
FROM generate_series(1, :users) AS n;

INSERT INTO refresh_families (id, user_id, created_at, expires_at)
SELECT gen_random_uuid(), id, now(), now() + interval '30 days' FROM users;

CREATE TABLE bench.user_ids AS
SELECT row_number() OVER (ORDER BY created_at DESC, id) AS n, id FROM users;
CREATE UNIQUE INDEX ON bench.user_ids (n);

-- The news texts: each body is 8–30 sentences drawn at random; the title is the first 4–11 words
-- of another sentence.
CREATE TABLE bench.news_sentences AS
SELECT g.n, k.k, 1 + floor(random() * 5000)::int AS sid
FROM generate_series(1, :news) AS g(n),
     LATERAL generate_series(1, 8 + floor(random() * 23)::int + g.n * 0) AS k(k);

CREATE TABLE bench.news_text AS
SELECT b.n,
       initcap(t.title) AS title,
       b.body,
       -- One item every 5 minutes, newest first, with up to a minute of jitter.
       date_trunc('milliseconds', now() - b.n * interval '5 minutes' - random() * interval '1 minute')
           AS date_created,
       1 + b.n % (SELECT count(*) FROM bench.user_ids) AS author_n
FROM (
    SELECT ns.n,
           string_agg(upper(left(s.words, 1)) || substr(s.words, 2) || '.', ' ' ORDER BY ns.k) AS body
    FROM bench.news_sentences ns
    JOIN bench.sentences s ON s.id = ns.sid
    GROUP BY ns.n
) AS b
CROSS JOIN LATERAL (
    SELECT array_to_string((string_to_array(s.words, ' '))[1:4 + (b.n % 8)], ' ') AS title
    FROM bench.sentences s
    WHERE s.id = 1 + (b.n::bigint * 7919) % 5000
) AS t;

CREATE UNIQUE INDEX ON bench.news_text (n);

-- Loading 100 000 rows through a full-text GIN index row by row costs about twice as much as
-- building the index once afterwards; the b-trees are built the same way (one sort rather than a
-- million insertions at `make bench-scale`'s largest size). So every index of news that backs no
-- constraint (GIN, b-tree, or any other kind a migration adds) is dropped and re-created from its
-- own definition (whatever the migrations made; the definitions are read back, not repeated here).
SET maintenance_work_mem = '256MB';
CREATE TEMP TABLE news_indexes AS
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'news'::regclass
  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid);
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT name FROM news_indexes LOOP
        EXECUTE format('DROP INDEX %I', r.name);
    END LOOP;
END $$;

INSERT INTO news (id, title, body, date_created, date_updated, author_id)
SELECT gen_random_uuid(), nt.title, nt.body, nt.date_created, nt.date_created, u.id
FROM bench.news_text nt
JOIN bench.user_ids u ON u.n = nt.author_n;

DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT def FROM news_indexes LOOP
        EXECUTE r.def;
    END LOOP;
END $$;

DROP TABLE bench.sentence_words, bench.news_sentences;

-- Words for the search scenario (S3): 40 words with ranks spread log-uniformly over 10..10 000,
-- so a query matches from about half the rows down to well under 1 %.
CREATE TABLE bench.search_words AS
SELECT i, v.rank, v.word
FROM generate_series(0, 39) AS i
JOIN bench.vocab v ON v.rank = round(10 * power(1000, i / 39.0))::int;

VACUUM ANALYZE users;
VACUUM ANALYZE refresh_families;
VACUUM ANALYZE news;

SELECT (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM news) AS news,
       (SELECT round(avg(char_length(title))) FROM news) AS avg_title_chars,
       (SELECT round(avg(char_length(body))) FROM news) AS avg_body_chars,
       pg_size_pretty(pg_total_relation_size('news')) AS news_size;
