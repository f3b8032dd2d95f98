-- bidim-intake's tables, created by `bidim-intake --create-schema` (idempotent).
-- @schema@, @series@, @points@ and @ext@ (the schema of the bidim extension) are
-- replaced by quoted identifiers before this runs; nothing here depends on search_path.

CREATE SCHEMA IF NOT EXISTS @schema@;

-- One row per Prometheus series: its full label set (with __name__) is its identity.
CREATE TABLE IF NOT EXISTS @schema@.@series@ (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    metric     text NOT NULL,
    labels     @ext@.tagset NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- unique label sets of any size (a btree key is limited to a third of a page)
    CONSTRAINT @series_labels_unique@ EXCLUDE USING hash (labels WITH OPERATOR(@ext@.=))
);
CREATE INDEX IF NOT EXISTS @series_metric_idx@ ON @schema@.@series@ (metric);
CREATE INDEX IF NOT EXISTS @series_labels_idx@ ON @schema@.@series@ USING gin (labels);
COMMENT ON TABLE @schema@.@series@ IS 'bidim-intake: Prometheus series (label sets as tagset)';

-- Samples: the bidim access method, keyed by series, partitioned by time.
CREATE TABLE IF NOT EXISTS @schema@.@points@ (
    series_id bigint NOT NULL,
    ts        timestamptz NOT NULL,
    value     float8 NOT NULL
) USING bidim;
COMMENT ON TABLE @schema@.@points@ IS 'bidim-intake: Prometheus samples (stale markers kept as their NaN bit pattern)';

-- What remote_write sends as metric metadata (type, help, unit), latest kept.
CREATE TABLE IF NOT EXISTS @schema@.metric_metadata (
    metric     text PRIMARY KEY,
    type       text NOT NULL,
    help       text NOT NULL,
    unit       text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @schema@.metric_metadata IS 'bidim-intake: metric metadata sent by remote_write';

-- Digests of stored write requests, committed with their samples: a request retried
-- after its commit (its answer lost) is recognized and not stored twice.
CREATE TABLE IF NOT EXISTS @schema@.intake_requests (
    digest    bytea PRIMARY KEY,
    samples   integer NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @schema@.intake_requests IS 'bidim-intake: digests of stored remote_write requests (kept for --dedup-window)';
