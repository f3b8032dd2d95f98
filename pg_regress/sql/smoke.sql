-- Smoke test: the extension installs, reports itself and is listed with its objects.
CREATE EXTENSION bidim;
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'bidim';
SELECT bidim.version() = extversion AS library_matches_sql FROM pg_extension WHERE extname = 'bidim';
SELECT bidim.preloaded();
\dx+ bidim
-- A second CREATE is refused, IF NOT EXISTS is a no-op.
CREATE EXTENSION bidim;
CREATE EXTENSION IF NOT EXISTS bidim;
DROP EXTENSION bidim;
SELECT count(*) FROM pg_namespace WHERE nspname = 'bidim';
