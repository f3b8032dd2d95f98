-- Tags: tagset and tagquery types, operators, the GIN operator class, describe-tags.
CREATE EXTENSION bidim;
\dT+ tagset
\dT+ tagquery
-- tagset: sorted by (key, value), de-duplicated, case-sensitive; split at the first colon.
SELECT '{env:prod, az:us-east-1a,gpu,env:prod,Env:Prod}'::tagset;
SELECT '{}'::tagset, '{"a,b:c d", "q:\"x\""}'::tagset;
SELECT * FROM tagset_each('{env:staging:east,gpu,a:}');
SELECT tags(ARRAY['b:2', 'a:1', 'b:2']), tagset_tags('{b:2,a:1}'), tagset_keys('{b:2,b:1,a:1,gpu}'),
       tagset_count('{b:2,a:1}'), ARRAY['x:1']::tagset, '{x:1}'::tagset::text[];
-- Operators.
SELECT '{a:1,b:2,c}'::tagset @> '{a:1,c}' AS contains, '{a:1}'::tagset <@ '{a:1,b:2}' AS contained,
       '{a:1}'::tagset && '{a:2,a:1}' AS overlaps, '{a:1}'::tagset && '{a:2}' AS no_overlap,
       '{a:1,gpu}'::tagset ? 'gpu' AS bare_key, '{a:1}'::tagset ? 'b' AS no_key,
       '{a:1}'::tagset ?| ARRAY['b', 'a'] AS any_key, '{a:1}'::tagset ?& ARRAY['b', 'a'] AS all_keys,
       '{a:1,b}'::tagset -> 'a' AS value, '{a:1,b}'::tagset -> 'b' AS bare_value, '{a:1}'::tagset -> 'z' AS absent,
       '{b,a}'::tagset = '{a,b}' AS equal;
-- tagquery: canonical form.
SELECT 'env:prod AND (az:us-east-1a OR az:us-east-1b) AND NOT host:web-* AND team:*'::tagquery;
SELECT 'a and b or c'::tagquery, 'NOT NOT a'::tagquery, 'k in (b, a, a)'::tagquery,
       'k not in (x)'::tagquery, 'svc:/web-[0-9]+/'::tagquery, 'url:http://x'::tagquery,
       'name:"a b"'::tagquery, 'k:*east*'::tagquery;
-- Matching.
CREATE TABLE s (id int, tags tagset);
INSERT INTO s VALUES
  (1, '{env:prod,service:web-1,az:us-east-1a,team:a}'),
  (2, '{env:prod,service:web-2,az:us-east-1b}'),
  (3, '{env:dev,service:db-1,az:eu-west-1a,gpu}'),
  (4, '{env:staging,service:web-canary,az:us-east-1a}'),
  (5, '{}'),
  (6, '{env:prod,env:dev,service:api}');
CREATE FUNCTION ids(q tagquery) RETURNS int[] LANGUAGE sql AS
  $$ SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM s WHERE tags @@ q $$;
SELECT q, ids(q::tagquery) FROM unnest(ARRAY[
  'env:prod', 'env:prod AND service:web-*', 'service:*-canary', 'az:*east*', 'gpu', 'team:*',
  'NOT env:prod', 'env IN (dev, staging)', 'env NOT IN (prod)', 'service:/web-[0-9]+/',
  'service:/(?i)WEB-1/', 'env:prod OR NOT service:*', 'NOT (env:prod OR env:dev)',
  'env:prod AND env:dev', 'az:us-east-1*', 'nosuch:*']) q;
-- The GIN index gives the same answers as a sequential scan, without rechecks.
CREATE INDEX s_tags ON s USING gin (tags);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM s WHERE tags @@ 'env:prod AND service:web-*';
EXPLAIN (COSTS OFF) SELECT id FROM s WHERE tags @> '{env:prod}';
SELECT q, ids(q::tagquery) FROM unnest(ARRAY[
  'env:prod', 'env:prod AND service:web-*', 'service:*-canary', 'az:*east*', 'gpu', 'team:*',
  'NOT env:prod', 'env IN (dev, staging)', 'env NOT IN (prod)', 'service:/web-[0-9]+/',
  'service:/(?i)WEB-1/', 'env:prod OR NOT service:*', 'NOT (env:prod OR env:dev)',
  'env:prod AND env:dev', 'az:us-east-1*', 'nosuch:*']) q;
SELECT array_agg(id ORDER BY id) FROM s WHERE tags @> '{env:prod}';
SELECT array_agg(id ORDER BY id) FROM s WHERE tags @> '{}';
SELECT array_agg(id ORDER BY id) FROM s WHERE tags && '{gpu,team:a}';
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ? 'gpu';
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ?| ARRAY['gpu', 'team'];
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ?& ARRAY['env', 'az'];
-- The same with key_entries = false (a smaller index: key lookups become partial
-- matches over the key's values).
DROP INDEX s_tags;
CREATE INDEX s_tags_nokeys ON s USING gin (tags tagset_ops (key_entries = false));
SELECT q, ids(q::tagquery) FROM unnest(ARRAY[
  'env:prod', 'env:prod AND service:web-*', 'service:*-canary', 'az:*east*', 'gpu', 'team:*',
  'NOT env:prod', 'env IN (dev, staging)', 'env NOT IN (prod)', 'service:/web-[0-9]+/',
  'service:/(?i)WEB-1/', 'env:prod OR NOT service:*', 'NOT (env:prod OR env:dev)',
  'env:prod AND env:dev', 'az:us-east-1*', 'nosuch:*']) q;
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ? 'gpu';
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ? 'env';
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ?| ARRAY['gpu', 'team'];
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ?& ARRAY['env', 'gpu'];
SELECT array_agg(id ORDER BY id) FROM s WHERE tags ?& ARRAY['env', 'az'];
EXPLAIN (COSTS OFF) SELECT id FROM s WHERE tags ? 'gpu';
RESET enable_seqscan;
-- Describe tags from the dictionary, kept exact through INSERT, UPDATE, DELETE, TRUNCATE.
SELECT bidim.enable_tag_dictionary('s', 'tags');
SELECT * FROM bidim.tag_keys('s');
SELECT * FROM bidim.tag_values('s', 'env');
SELECT * FROM bidim.describe_tags('s', lim => 4);
SELECT * FROM bidim.describe_tags('s', 'env:prod');
SELECT * FROM bidim.tag_keys('s', 'service:web-*');
SELECT * FROM bidim.tag_values('s', 'az', 'env:prod');
UPDATE s SET tags = '{env:qa,gpu}' WHERE id = 2;
DELETE FROM s WHERE id = 6;
INSERT INTO s VALUES (7, '{env:qa}');
SELECT * FROM bidim.tag_values('s', 'env');
SELECT (SELECT count(*) FROM bidim.describe_tags('s'))
     = (SELECT count(*) FROM (SELECT DISTINCT e.key, e.value FROM s, tagset_each(s.tags) e) d) AS exact;
BEGIN;
TRUNCATE s;
SELECT count(*) FROM bidim.describe_tags('s');
ROLLBACK;
SELECT count(*) FROM bidim.describe_tags('s');
-- Errors show the position of the problem.
SELECT '{a,,b}'::tagset;
SELECT 'env:prod'::tagset;
SELECT '{a'::tagset;
SELECT '{:x}'::tagset;
SELECT '{a} b'::tagset;
SELECT 'a AND'::tagquery;
SELECT '(a OR b'::tagquery;
SELECT 'a b'::tagquery;
SELECT 'k:/[/'::tagquery;
SELECT 'k IN (a'::tagquery;
SELECT ''::tagquery;
SELECT 'k:"abc'::tagquery;
SELECT '{env:a,env:b}'::tagset -> 'env';
SELECT length(('{k:' || repeat('x', 600) || '}')::tagset::text);
SELECT tagset_count(tags(array_agg('k:' || g))) FROM generate_series(1, 2000) g;
SELECT ('k IN (' || string_agg('v' || g, ',') || ')')::tagquery IS NOT NULL AS in_list_is_one_term
FROM generate_series(1, 300) g;
SELECT (string_agg('k:v' || g, ' OR '))::tagquery FROM generate_series(1, 300) g;
SELECT ('k IN (' || string_agg('v' || g, ',') || ')')::tagquery FROM generate_series(1, 1100) g;
SELECT (repeat('(', 70) || 'a' || repeat(')', 70))::tagquery;
SELECT tags(ARRAY['a', NULL]);
SELECT tags(ARRAY[':x']);
SELECT bidim.enable_tag_dictionary('s', 'tags');
SELECT bidim.enable_tag_dictionary('s', 'id');
SELECT bidim.enable_tag_dictionary('s', 'nosuch');
SELECT * FROM bidim.tag_keys('pg_class');
SELECT bidim.disable_tag_dictionary('s');
SELECT count(*) FROM bidim.tag_dict;
-- Dropping a table drops its dictionary.
SELECT bidim.enable_tag_dictionary('s', 'tags');
DROP TABLE s;
SELECT count(*) FROM bidim.tag_dict;
DROP FUNCTION ids(tagquery);
DROP EXTENSION bidim;
