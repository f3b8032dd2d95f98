-- Metric semantics (src/metrics/): counters, gauges, first/last, gap filling.
-- Every aggregate shares one state (every point of the group, src/metrics/points.rs),
-- with combine, serialize and deserialize functions, so parallel workers, Citus
-- shards and rollups combine partial states. Support functions are internal: they
-- live in bidim, are revoked from PUBLIC, and take `internal`, which SQL cannot make.
-- Every name is schema-qualified; pgspot checks this file.

CREATE FUNCTION bidim._points_trans(internal, float8, timestamptz) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_trans';
CREATE FUNCTION bidim._points_trans(internal, float8, timestamptz, timestamptz, timestamptz) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_trans';
CREATE FUNCTION bidim._points_trans(internal, float8, timestamptz, text) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_trans';
CREATE FUNCTION bidim._first_trans(internal, float8, timestamptz) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_first_trans';
CREATE FUNCTION bidim._last_trans(internal, float8, timestamptz) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_last_trans';
CREATE FUNCTION bidim._points_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_combine';
CREATE FUNCTION bidim._points_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_serialize';
CREATE FUNCTION bidim._points_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_deserialize';
CREATE FUNCTION bidim._increase_final(internal) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_increase_final';
CREATE FUNCTION bidim._rate_final(internal) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_rate_final';
CREATE FUNCTION bidim._delta_final(internal) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_delta_final';
CREATE FUNCTION bidim._time_weight_final(internal) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_time_weight_final';
CREATE FUNCTION bidim._kept_value_final(internal) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_kept_value_final';
CREATE FUNCTION bidim._kept_time_final(internal) RETURNS timestamptz
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_kept_time_final';
REVOKE ALL ON FUNCTION
    bidim._points_trans(internal, float8, timestamptz),
    bidim._points_trans(internal, float8, timestamptz, timestamptz, timestamptz),
    bidim._points_trans(internal, float8, timestamptz, text),
    bidim._first_trans(internal, float8, timestamptz),
    bidim._last_trans(internal, float8, timestamptz),
    bidim._points_combine(internal, internal),
    bidim._points_serialize(internal),
    bidim._points_deserialize(bytea, internal),
    bidim._increase_final(internal),
    bidim._rate_final(internal),
    bidim._delta_final(internal),
    bidim._time_weight_final(internal),
    bidim._kept_value_final(internal),
    bidim._kept_time_final(internal)
FROM PUBLIC;

-- Counters (Prometheus semantics: a drop is a reset). Without a window: over the
-- sampled points. With a window [range_start, range_end]: extrapolated to its edges
-- as PromQL's increase()/rate()/delta() (docs/metrics.md).
CREATE AGGREGATE @extschema@.increase(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._increase_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.increase(value float8, "time" timestamptz, range_start timestamptz, range_end timestamptz) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._increase_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.rate(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._rate_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.rate(value float8, "time" timestamptz, range_start timestamptz, range_end timestamptz) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._rate_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.delta(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._delta_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.delta(value float8, "time" timestamptz, range_start timestamptz, range_end timestamptz) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._delta_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);

-- Gauges: the time-weighted average from the first to the last point.
CREATE AGGREGATE @extschema@.time_weighted_avg(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._time_weight_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.time_weighted_avg(value float8, "time" timestamptz, method text) (
    SFUNC = bidim._points_trans, STYPE = internal, FINALFUNC = bidim._time_weight_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);

-- The value at the earliest / latest time (ties: the smaller / larger value), and
-- that time.
CREATE AGGREGATE @extschema@.first(value float8, "time" timestamptz) (
    SFUNC = bidim._first_trans, STYPE = internal, FINALFUNC = bidim._kept_value_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.last(value float8, "time" timestamptz) (
    SFUNC = bidim._last_trans, STYPE = internal, FINALFUNC = bidim._kept_value_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.first_time(value float8, "time" timestamptz) (
    SFUNC = bidim._first_trans, STYPE = internal, FINALFUNC = bidim._kept_time_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.last_time(value float8, "time" timestamptz) (
    SFUNC = bidim._last_trans, STYPE = internal, FINALFUNC = bidim._kept_time_final,
    COMBINEFUNC = bidim._points_combine, SERIALFUNC = bidim._points_serialize,
    DESERIALFUNC = bidim._points_deserialize, PARALLEL = SAFE);

COMMENT ON AGGREGATE @extschema@.increase(float8, timestamptz) IS 'bidim: counter increase over the sampled points (resets added back)';
COMMENT ON AGGREGATE @extschema@.increase(float8, timestamptz, timestamptz, timestamptz) IS 'bidim: counter increase extrapolated to the window, as PromQL increase()';
COMMENT ON AGGREGATE @extschema@.rate(float8, timestamptz) IS 'bidim: counter per-second rate over the sampled points (resets added back)';
COMMENT ON AGGREGATE @extschema@.rate(float8, timestamptz, timestamptz, timestamptz) IS 'bidim: counter per-second rate over the window, as PromQL rate()';
COMMENT ON AGGREGATE @extschema@.delta(float8, timestamptz) IS 'bidim: gauge change from the first to the last point';
COMMENT ON AGGREGATE @extschema@.delta(float8, timestamptz, timestamptz, timestamptz) IS 'bidim: gauge change extrapolated to the window, as PromQL delta()';
COMMENT ON AGGREGATE @extschema@.time_weighted_avg(float8, timestamptz) IS 'bidim: time-weighted average of a gauge (linear between points)';
COMMENT ON AGGREGATE @extschema@.time_weighted_avg(float8, timestamptz, text) IS 'bidim: time-weighted average of a gauge (method linear or locf)';
COMMENT ON AGGREGATE @extschema@.first(float8, timestamptz) IS 'bidim: the value at the earliest time';
COMMENT ON AGGREGATE @extschema@.last(float8, timestamptz) IS 'bidim: the value at the latest time';
COMMENT ON AGGREGATE @extschema@.first_time(float8, timestamptz) IS 'bidim: the earliest time';
COMMENT ON AGGREGATE @extschema@.last_time(float8, timestamptz) IS 'bidim: the latest time';

-- Gap filling: one row per bucket of [start, finish), from one series' known buckets
-- (an array of bucket starts on the grid start + n * width, and their values).
CREATE FUNCTION bidim.gapfill(buckets timestamptz[], vals float8[], start timestamptz, finish timestamptz,
                              width interval, fill text DEFAULT 'null', before float8 DEFAULT NULL)
    RETURNS TABLE (bucket timestamptz, value float8)
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'gapfill_rows_wrapper';
COMMENT ON FUNCTION bidim.gapfill(timestamptz[], float8[], timestamptz, timestamptz, interval, text, float8)
    IS 'bidim: one row per bucket of [start, finish), empty buckets filled (null, locf or linear)';
