-- Metric semantics (src/metrics/): counters, gauges, first/last, gap filling.
-- Every aggregate shares one state, bidim.metric_points (every point of the group,
-- src/metrics/points.rs and sql.rs): a real type, not internal, so Citus pushes the
-- aggregates down to shards and parallel workers hand partial states over; its text
-- form is \x and hex digits of its binary form. Support functions are internal: they
-- live in bidim and are revoked from PUBLIC.
-- Every name is schema-qualified; pgspot checks this file.

CREATE TYPE bidim.metric_points;
CREATE FUNCTION bidim.metric_points_in(cstring) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_metric_points_in';
CREATE FUNCTION bidim.metric_points_out(bidim.metric_points) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_metric_points_out';
CREATE FUNCTION bidim.metric_points_recv(internal) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_metric_points_recv';
CREATE FUNCTION bidim.metric_points_send(bidim.metric_points) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_metric_points_send';
-- Plain storage and double alignment: a state is read where it lies, never packed.
CREATE TYPE bidim.metric_points (
    INPUT = bidim.metric_points_in, OUTPUT = bidim.metric_points_out,
    RECEIVE = bidim.metric_points_recv, SEND = bidim.metric_points_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = double, STORAGE = plain
);
COMMENT ON TYPE bidim.metric_points IS 'bidim: the state of the counter, gauge and first/last aggregates (every point of a group)';

CREATE FUNCTION bidim._points_trans(bidim.metric_points, float8, timestamptz) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_trans';
CREATE FUNCTION bidim._points_trans(bidim.metric_points, float8, timestamptz, timestamptz, timestamptz) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_trans';
CREATE FUNCTION bidim._points_trans(bidim.metric_points, float8, timestamptz, text) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_trans';
CREATE FUNCTION bidim._first_trans(bidim.metric_points, float8, timestamptz) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_first_trans';
CREATE FUNCTION bidim._last_trans(bidim.metric_points, float8, timestamptz) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_last_trans';
CREATE FUNCTION bidim._points_combine(bidim.metric_points, bidim.metric_points) RETURNS bidim.metric_points
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_points_combine';
CREATE FUNCTION bidim._increase_final(bidim.metric_points) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_increase_final';
CREATE FUNCTION bidim._rate_final(bidim.metric_points) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_rate_final';
CREATE FUNCTION bidim._delta_final(bidim.metric_points) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_delta_final';
CREATE FUNCTION bidim._time_weight_final(bidim.metric_points) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_time_weight_final';
CREATE FUNCTION bidim._kept_value_final(bidim.metric_points) RETURNS float8
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_kept_value_final';
CREATE FUNCTION bidim._kept_time_final(bidim.metric_points) RETURNS timestamptz
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'bidim_kept_time_final';
REVOKE ALL ON FUNCTION
    bidim._points_trans(bidim.metric_points, float8, timestamptz),
    bidim._points_trans(bidim.metric_points, float8, timestamptz, timestamptz, timestamptz),
    bidim._points_trans(bidim.metric_points, float8, timestamptz, text),
    bidim._first_trans(bidim.metric_points, float8, timestamptz),
    bidim._last_trans(bidim.metric_points, float8, timestamptz),
    bidim._points_combine(bidim.metric_points, bidim.metric_points),
    bidim._increase_final(bidim.metric_points),
    bidim._rate_final(bidim.metric_points),
    bidim._delta_final(bidim.metric_points),
    bidim._time_weight_final(bidim.metric_points),
    bidim._kept_value_final(bidim.metric_points),
    bidim._kept_time_final(bidim.metric_points)
FROM PUBLIC;

-- Counters (Prometheus semantics: a drop is a reset). Without a window: over the
-- sampled points. With a window [range_start, range_end]: extrapolated to its edges
-- as PromQL's increase()/rate()/delta() (docs/metrics.md).
CREATE AGGREGATE @extschema@.increase(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._increase_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.increase(value float8, "time" timestamptz, range_start timestamptz, range_end timestamptz) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._increase_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.rate(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._rate_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.rate(value float8, "time" timestamptz, range_start timestamptz, range_end timestamptz) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._rate_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.delta(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._delta_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.delta(value float8, "time" timestamptz, range_start timestamptz, range_end timestamptz) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._delta_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);

-- Gauges: the time-weighted average from the first to the last point.
CREATE AGGREGATE @extschema@.time_weighted_avg(value float8, "time" timestamptz) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._time_weight_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.time_weighted_avg(value float8, "time" timestamptz, method text) (
    SFUNC = bidim._points_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._time_weight_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);

-- The value at the earliest / latest time (ties: the smaller / larger value), and
-- that time.
CREATE AGGREGATE @extschema@.first(value float8, "time" timestamptz) (
    SFUNC = bidim._first_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._kept_value_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.last(value float8, "time" timestamptz) (
    SFUNC = bidim._last_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._kept_value_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.first_time(value float8, "time" timestamptz) (
    SFUNC = bidim._first_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._kept_time_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);
CREATE AGGREGATE @extschema@.last_time(value float8, "time" timestamptz) (
    SFUNC = bidim._last_trans, STYPE = bidim.metric_points, FINALFUNC = bidim._kept_time_final,
    COMBINEFUNC = bidim._points_combine, PARALLEL = SAFE);

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
