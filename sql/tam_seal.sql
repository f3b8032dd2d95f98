-- Marks hot chunks of table $1 sealed (src/tam/hot_chunk.rs, seal_chunks): all of
-- them, or those of key range $2, of partition $3 but chunk $4, or of partitions that
-- ended before $5 (NULL: no condition). Rows locked by another transaction (sealing or
-- dropping them itself) are skipped. Runs as the extension owner with search_path
-- pg_catalog, pg_temp; returns how many were sealed.
WITH l AS (
    SELECT c.chunk_id FROM bidim.chunk c
    WHERE c.rel OPERATOR(pg_catalog.=) $1 AND c.state OPERATOR(pg_catalog.=) 'hot'
      AND ($2::pg_catalog.int4 IS NULL OR c.range_id OPERATOR(pg_catalog.=) $2)
      AND ($3::pg_catalog.timestamptz IS NULL OR c.time_lo OPERATOR(pg_catalog.=) $3)
      AND ($4::pg_catalog.int4 IS NULL OR c.chunk_id OPERATOR(pg_catalog.<>) $4)
      AND ($5::pg_catalog.timestamptz IS NULL OR c.time_hi OPERATOR(pg_catalog.<) $5)
    FOR UPDATE SKIP LOCKED
), s AS (
    UPDATE bidim.chunk c SET state = 'sealed', sealed_at = pg_catalog.now(),
                             sealed_xid = pg_catalog.pg_current_xact_id()
    FROM l
    WHERE c.rel OPERATOR(pg_catalog.=) $1 AND c.chunk_id OPERATOR(pg_catalog.=) l.chunk_id
    RETURNING 1
)
SELECT pg_catalog.count(*) FROM s
