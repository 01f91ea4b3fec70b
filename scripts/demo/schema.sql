-- The embedded demo's database: a blog whose "latest posts of a user" query has no index (S1).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE IF NOT EXISTS posts (
  id serial PRIMARY KEY,
  user_id int NOT NULL,
  title text,
  body text,
  created_at timestamptz NOT NULL
);
INSERT INTO posts (user_id, title, body, created_at)
SELECT 1 + (random() * 999)::int, 'post ' || g, repeat('words ', 30), now() - g * interval '1 minute'
FROM generate_series(1, 200000) g
WHERE NOT EXISTS (SELECT 1 FROM posts LIMIT 1);
ANALYZE posts;
