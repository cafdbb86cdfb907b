CREATE INDEX news_fulltext_idx ON news USING gin (to_tsvector('english', title || ' ' || body));
DROP INDEX news_search_idx;
ALTER TABLE news DROP COLUMN search;
