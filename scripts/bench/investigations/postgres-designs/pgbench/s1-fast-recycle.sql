-- S1 without the recycle check (deadpool RecyclingMethod::Fast): the same two queries.
\set n random(1, 100000)
\set s random(1, 10000)
SELECT "users"."id", "users"."email", "users"."name", "users"."role", "users"."created_at" FROM ("users" INNER JOIN "refresh_families" ON ("refresh_families"."user_id" = "users"."id")) WHERE (((("users"."id" = (SELECT user_id FROM bench.sessions WHERE n = :s)) AND ("refresh_families"."id" = (SELECT family_id FROM bench.sessions WHERE n = :s))) AND ("refresh_families"."revoked_at" IS NULL)) AND ("refresh_families"."expires_at" > CURRENT_TIMESTAMP)) LIMIT 1;
SELECT "news"."id", "news"."title", "news"."body", "news"."date_created", "news"."date_updated", "news"."author_id", "news"."version" FROM "news" WHERE ("news"."id" = (SELECT id FROM bench.news_ids WHERE n = :n)) LIMIT 1;
