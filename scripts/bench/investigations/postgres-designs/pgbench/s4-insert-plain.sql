-- s4-insert.sql into bench.news_plain: the same table without the stored tsvector and its GIN index.
-- version = 7 marks the rows it adds, so that they can be deleted afterwards.
\set n random(1, 100000)
\set u random(1, 10000)
INSERT INTO bench.news_plain (id, title, body, date_created, date_updated, author_id, version) SELECT gen_random_uuid(), t.title, t.body, now(), now(), (SELECT id FROM bench.user_ids WHERE n = :u), 7 FROM bench.news_text t WHERE t.n = :n RETURNING id, title, body, date_created, date_updated, author_id, version;
