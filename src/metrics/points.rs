//! The state of the counter and gauge aggregates: every (time, value) point of a
//! group, in any order, and its binary form (partial states between parallel workers,
//! Citus shards and the coordinator).
//!
//! Why every point: a counter's increase and a gauge's time-weighted average depend on
//! consecutive points in time order, and two partial states of one series (two
//! parallel workers, or a late row) interleave in time. A summary (first, last, resets)
//! of each state could not be merged exactly; the points can, in any order. The
//! finals sort once; states are 16 bytes a point, allocated where PostgreSQL counts
//! them (the aggregate's memory context).

/// One point: microseconds since 2000-01-01 (PostgreSQL's timestamptz) and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

/// Puts points in the one order every final reads them in: by time, and points with
/// equal times by value (IEEE total order), so answers do not depend on the order rows
/// arrived in, nor on how they were split into partial states.
pub fn normalize(points: &mut [Point]) {
    points.sort_unstable_by(|a, b| a.t.cmp(&b.t).then(a.v.total_cmp(&b.v)));
}

/// Whether `points` are in [`normalize`]'s order.
pub fn is_normalized(points: &[Point]) -> bool {
    points
        .windows(2)
        .all(|w| w[0].t.cmp(&w[1].t).then(w[0].v.total_cmp(&w[1].v)).is_le())
}

/// What a state carries besides its points: the window its rows were asked about
/// (`rate(value, time, start, end)`), and the gauge method (time-weighted averages).
/// Every row of a group passes the same; combining states with different ones is an
/// error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params {
    pub window: Option<(i64, i64)>,
    /// 0: none (or the default); else a method's code.
    pub method: u8,
    /// Which points the state keeps.
    pub keep: Keep,
}

/// Which points a state keeps: all of them (counters, gauges), or only the one that
/// comes first or last in [`normalize`]'s order (`first`, `last`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Keep {
    #[default]
    All,
    First,
    Last,
}

impl Keep {
    fn code(self) -> u8 {
        match self {
            Keep::All => 0,
            Keep::First => 1,
            Keep::Last => 2,
        }
    }

    fn of(code: u8) -> Option<Keep> {
        match code {
            0 => Some(Keep::All),
            1 => Some(Keep::First),
            2 => Some(Keep::Last),
            _ => None,
        }
    }

    /// Whether a state keeping one point replaces `kept` by `p`.
    pub fn replaces(self, kept: Point, p: Point) -> bool {
        let before = p.t.cmp(&kept.t).then(p.v.total_cmp(&kept.v)).is_lt();
        match self {
            Keep::All => false,
            Keep::First => before,
            Keep::Last => !before && p != kept,
        }
    }
}

/// Version byte of the binary form.
const VERSION: u8 = 1;

/// The binary form: a version byte, a flags byte (bit 0: a window follows; bits 1-2:
/// [`Keep`]), the method
/// byte, the window's start and end if any, then each point as little-endian i64 time
/// and f64 value.
pub fn encode(params: Params, points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + points.len() * 16);
    out.push(VERSION);
    out.push(u8::from(params.window.is_some()) | (params.keep.code() << 1));
    out.push(params.method);
    if let Some((s, e)) = params.window {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
    }
    for p in points {
        out.extend_from_slice(&p.t.to_le_bytes());
        out.extend_from_slice(&p.v.to_le_bytes());
    }
    out
}

fn le_i64(b: &[u8]) -> i64 {
    i64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Reads [`encode`]'s form; `Err` names what is wrong.
pub fn decode(bytes: &[u8]) -> Result<(Params, Vec<Point>), String> {
    let [version, flags, method, rest @ ..] = bytes else {
        return Err(format!("state of {} bytes is too short", bytes.len()));
    };
    if *version != VERSION {
        return Err(format!("unknown state version {version}"));
    }
    let Some(keep) = Keep::of(flags >> 1).filter(|_| *flags < 8) else {
        return Err(format!("bad state flags {flags}"));
    };
    let (window, rest) = match flags & 1 {
        0 => (None, rest),
        _ if rest.len() >= 16 => (
            Some((le_i64(&rest[..8]), le_i64(&rest[8..16]))),
            &rest[16..],
        ),
        _ => return Err("state too short for its window".into()),
    };
    if rest.len() % 16 != 0 {
        return Err(format!("state of {} bytes is not whole points", rest.len()));
    }
    let points = rest
        .chunks_exact(16)
        .map(|c| Point {
            t: le_i64(&c[..8]),
            v: f64::from_le_bytes(c[8..].try_into().expect("8 bytes")),
        })
        .collect();
    Ok((
        Params {
            window,
            method: *method,
            keep,
        },
        points,
    ))
}
