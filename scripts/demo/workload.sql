\set uid random(1, 1000)
SELECT * FROM posts WHERE user_id = :uid ORDER BY created_at DESC LIMIT 10;
