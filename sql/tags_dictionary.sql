-- Describe tags: a dictionary of (key, tag) -> number of series, kept by statement
-- triggers on the series table, so listing keys and values never scans the series.
-- src/tags/dictionary.rs implements the C functions.
CREATE TABLE bidim.tag_dictionary (
    rel         pg_catalog.regclass PRIMARY KEY,
    column_name pg_catalog.name     NOT NULL
);
COMMENT ON TABLE bidim.tag_dictionary IS 'bidim: tables whose tagset column has a describe-tags dictionary';
CREATE TABLE bidim.tag_dict (
    rel    pg_catalog.regclass NOT NULL,
    key    pg_catalog.text     NOT NULL,
    tag    pg_catalog.text     NOT NULL,   -- '' for the row counting series that have the key
    series pg_catalog.int8     NOT NULL,
    PRIMARY KEY (rel, key, tag)
);
CREATE INDEX tag_dict_empty ON bidim.tag_dict (rel) WHERE series OPERATOR(pg_catalog.<=) 0;
COMMENT ON TABLE bidim.tag_dict IS 'bidim: describe-tags dictionary (series per key and per tag)';
SELECT pg_catalog.pg_extension_config_dump('bidim.tag_dictionary', '');
SELECT pg_catalog.pg_extension_config_dump('bidim.tag_dict', '');
-- Readers see the dictionary rows of tables they may read.
ALTER TABLE bidim.tag_dict ENABLE ROW LEVEL SECURITY;
CREATE POLICY tag_dict_readable ON bidim.tag_dict FOR SELECT
    USING (pg_catalog.has_table_privilege(rel, 'SELECT'));
ALTER TABLE bidim.tag_dictionary ENABLE ROW LEVEL SECURITY;
CREATE POLICY tag_dictionary_readable ON bidim.tag_dictionary FOR SELECT
    USING (pg_catalog.has_table_privilege(rel, 'SELECT'));
GRANT SELECT ON bidim.tag_dict, bidim.tag_dictionary TO PUBLIC;

-- The statement trigger: reads its own transition tables (never a relation by name)
-- and adds the tags of new rows, subtracts those of old rows. Not SECURITY DEFINER:
-- it writes the dictionary through bidim's privileged path, for the table it fires on.
CREATE FUNCTION bidim._tag_dict_trigger() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'bidim_tag_dict_trigger';
REVOKE ALL ON FUNCTION bidim._tag_dict_trigger() FROM PUBLIC;

CREATE FUNCTION bidim.enable_tag_dictionary(rel pg_catalog.regclass, column_name pg_catalog.name)
RETURNS pg_catalog.int8
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_enable_tag_dictionary';
COMMENT ON FUNCTION bidim.enable_tag_dictionary(pg_catalog.regclass, pg_catalog.name) IS
    'bidim: keep a describe-tags dictionary of a tagset column (triggers); returns the number of series counted';

CREATE FUNCTION bidim.disable_tag_dictionary(rel pg_catalog.regclass)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'bidim_disable_tag_dictionary';
COMMENT ON FUNCTION bidim.disable_tag_dictionary(pg_catalog.regclass) IS
    'bidim: drop the describe-tags dictionary of a table and its triggers';

-- Dropped tables leave the dictionary (each capability cleans up its own rows).
CREATE FUNCTION bidim._tags_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM bidim.tag_dict d USING pg_catalog.pg_event_trigger_dropped_objects() o
    WHERE d.rel::pg_catalog.oid OPERATOR(pg_catalog.=) o.objid
      AND o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      AND o.objsubid OPERATOR(pg_catalog.=) 0;
    DELETE FROM bidim.tag_dictionary d USING pg_catalog.pg_event_trigger_dropped_objects() o
    WHERE d.rel::pg_catalog.oid OPERATOR(pg_catalog.=) o.objid
      AND o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      AND o.objsubid OPERATOR(pg_catalog.=) 0;
END
$$;
REVOKE ALL ON FUNCTION bidim._tags_on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER bidim_tags_sql_drop ON sql_drop EXECUTE FUNCTION bidim._tags_on_sql_drop();

-- The tagset column a table's dictionary counts (an error if it has none).
CREATE FUNCTION bidim.tag_dictionary_column(rel pg_catalog.regclass) RETURNS pg_catalog.name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col pg_catalog.name;
    single pg_catalog.bool;
BEGIN
    SELECT d.column_name INTO col FROM bidim.tag_dictionary d
    WHERE d.rel OPERATOR(pg_catalog.=) tag_dictionary_column.rel;
    -- A Citus table keeps no dictionary: the describe-tags functions count its shards'
    -- series with a distributed query over its one tagset column.
    IF col IS NULL AND bidim.is_citus_table(rel) THEN
        SELECT pg_catalog.min(a.attname::pg_catalog.text), pg_catalog.count(*) OPERATOR(pg_catalog.=) 1 INTO col, single
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attnum OPERATOR(pg_catalog.>) 0
          AND NOT a.attisdropped AND a.atttypid OPERATOR(pg_catalog.=) '@extschema@.tagset'::pg_catalog.regtype;
        IF NOT single THEN
            RAISE EXCEPTION 'Citus table "%" must have exactly one tagset column for describe-tags', rel
                USING ERRCODE = 'undefined_object';
        END IF;
        RETURN col;
    END IF;
    IF col IS NULL THEN
        RAISE EXCEPTION 'table "%" has no tag dictionary', rel
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create one with bidim.enable_tag_dictionary(table, column).';
    END IF;
    RETURN col;
END
$$;
COMMENT ON FUNCTION bidim.tag_dictionary_column(pg_catalog.regclass) IS
    'bidim: the tagset column whose describe-tags dictionary a table keeps';

CREATE FUNCTION bidim.tag_keys(rel pg_catalog.regclass, filter @extschema@.tagquery DEFAULT NULL,
                               lim pg_catalog.int4 DEFAULT NULL)
RETURNS TABLE (key pg_catalog.text, series pg_catalog.int8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col pg_catalog.name := bidim.tag_dictionary_column(rel);
BEGIN
    IF filter IS NULL AND NOT bidim.is_citus_table(rel) THEN
        RETURN QUERY SELECT d.key, d.series FROM bidim.tag_dict d
                     WHERE d.rel OPERATOR(pg_catalog.=) tag_keys.rel AND d.tag OPERATOR(pg_catalog.=) ''
                     ORDER BY d.key LIMIT lim;
    ELSE
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT k, pg_catalog.count(*) FROM %s s, pg_catalog.unnest(@extschema@.tagset_keys(s.%I)) AS k
             WHERE ($1 IS NULL OR s.%I OPERATOR(@extschema@.@@) $1) GROUP BY k ORDER BY k LIMIT $2', rel, col, col)
            USING filter, lim;
    END IF;
END
$$;

CREATE FUNCTION bidim.tag_values(rel pg_catalog.regclass, key pg_catalog.text,
                                 filter @extschema@.tagquery DEFAULT NULL, lim pg_catalog.int4 DEFAULT NULL)
RETURNS TABLE (value pg_catalog.text, series pg_catalog.int8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col pg_catalog.name := bidim.tag_dictionary_column(rel);
BEGIN
    IF filter IS NULL AND NOT bidim.is_citus_table(rel) THEN
        RETURN QUERY SELECT CASE WHEN d.tag OPERATOR(pg_catalog.=) d.key THEN NULL
                                 ELSE pg_catalog.substr(d.tag, pg_catalog.length(d.key) OPERATOR(pg_catalog.+) 2) END,
                            d.series
                     FROM bidim.tag_dict d
                     WHERE d.rel OPERATOR(pg_catalog.=) tag_values.rel AND d.key OPERATOR(pg_catalog.=) tag_values.key
                       AND d.tag OPERATOR(pg_catalog.<>) ''
                     ORDER BY d.tag LIMIT lim;
    ELSE
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT e.value, pg_catalog.count(*) FROM %s s, @extschema@.tagset_each(s.%I) AS e
             WHERE ($1 IS NULL OR s.%I OPERATOR(@extschema@.@@) $1) AND e.key OPERATOR(pg_catalog.=) $2
             GROUP BY e.value ORDER BY e.value NULLS FIRST LIMIT $3', rel, col, col)
            USING filter, key, lim;
    END IF;
END
$$;

CREATE FUNCTION bidim.describe_tags(rel pg_catalog.regclass, filter @extschema@.tagquery DEFAULT NULL,
                                    lim pg_catalog.int4 DEFAULT NULL)
RETURNS TABLE (key pg_catalog.text, value pg_catalog.text, series pg_catalog.int8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col pg_catalog.name := bidim.tag_dictionary_column(rel);
BEGIN
    IF filter IS NULL AND NOT bidim.is_citus_table(rel) THEN
        RETURN QUERY SELECT d.key,
                            CASE WHEN d.tag OPERATOR(pg_catalog.=) d.key THEN NULL
                                 ELSE pg_catalog.substr(d.tag, pg_catalog.length(d.key) OPERATOR(pg_catalog.+) 2) END,
                            d.series
                     FROM bidim.tag_dict d
                     WHERE d.rel OPERATOR(pg_catalog.=) describe_tags.rel AND d.tag OPERATOR(pg_catalog.<>) ''
                     ORDER BY d.key, d.tag LIMIT lim;
    ELSE
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT e.key, e.value, pg_catalog.count(*) FROM %s s, @extschema@.tagset_each(s.%I) AS e
             WHERE ($1 IS NULL OR s.%I OPERATOR(@extschema@.@@) $1)
             GROUP BY e.key, e.value ORDER BY e.key, e.value NULLS FIRST LIMIT $2', rel, col, col)
            USING filter, lim;
    END IF;
END
$$;
COMMENT ON FUNCTION bidim.describe_tags(pg_catalog.regclass, @extschema@.tagquery, pg_catalog.int4) IS
    'bidim: keys and values of a tagset column with their series counts (from the dictionary; a filter reads the matching series)';
