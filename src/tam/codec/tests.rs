use super::*;
use proptest::prelude::*;

fn nulls_of(mask: &[bool]) -> Option<Vec<u8>> {
    if !mask.iter().any(|&b| b) {
        return None;
    }
    let mut b = vec![0u8; mask.len().div_ceil(8)];
    for (i, &m) in mask.iter().enumerate() {
        if m {
            b[i / 8] |= 1 << (i % 8);
        }
    }
    Some(b)
}

/// A column of `rows` rows where `mask` marks the NULLs and `values` holds the others.
fn column(mask: &[bool], values: Values) -> Column {
    assert_eq!(mask.iter().filter(|&&m| !m).count(), values.len());
    Column {
        rows: mask.len(),
        nulls: nulls_of(mask),
        values,
    }
}

/// Equality that compares floats by their bits (NaN payloads, -0.0).
fn same(a: &Column, b: &Column) -> bool {
    let bits = match (&a.values, &b.values) {
        (Values::F32(x), Values::F32(y)) => Some(
            x.iter()
                .map(|f| f.to_bits() as u64)
                .eq(y.iter().map(|f| f.to_bits() as u64)),
        ),
        (Values::F64(x), Values::F64(y)) => Some(
            x.iter()
                .map(|f| f.to_bits())
                .eq(y.iter().map(|f| f.to_bits())),
        ),
        _ => None,
    };
    a.rows == b.rows && a.nulls == b.nulls && bits.unwrap_or_else(|| a.values == b.values)
}

fn round_trip(c: &Column) {
    let bytes = encode(c);
    let back = decode(&bytes).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert!(same(c, &back), "{c:?}\n!=\n{back:?}");
}

/// The first `upto` rows of `c`, as [`decode_prefix`] must give them.
fn prefix_of(c: &Column, upto: usize) -> Column {
    let keep = upto.min(c.rows);
    let mask: Vec<bool> = (0..keep).map(|i| c.is_null(i)).collect();
    let mut values = c.values.clone();
    values.split_off(mask.iter().filter(|&&m| !m).count());
    column(&mask, values)
}

fn check_prefix(c: &Column, upto: usize) {
    let (got, rows) =
        decode_prefix(&encode(c), upto).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(rows, c.rows);
    let want = prefix_of(c, upto);
    assert!(same(&want, &got), "upto {upto}: {want:?}\n!=\n{got:?}");
}

fn bytes_of(values: &[Vec<u8>]) -> ByteValues {
    let mut b = ByteValues::default();
    for v in values {
        b.push(v);
    }
    b
}

#[test]
fn special_floats_round_trip_bit_for_bit() {
    let f64s = vec![
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001), // signalling NaN payload
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::from_bits(1), // subnormal
        1.5,
    ];
    round_trip(&Column::without_nulls(Values::F64(f64s)));
    let f32s = vec![
        f32::NAN,
        -0.0,
        0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN,
        f32::MAX,
    ];
    round_trip(&Column::without_nulls(Values::F32(f32s)));
}

#[test]
fn extremes_empty_and_all_null_round_trip() {
    round_trip(&Column::without_nulls(Values::I64(vec![
        i64::MIN,
        i64::MAX,
        0,
        -1,
    ])));
    round_trip(&Column::without_nulls(Values::I32(vec![
        i32::MIN,
        i32::MAX,
    ])));
    round_trip(&Column::without_nulls(Values::I16(vec![
        i16::MIN,
        i16::MAX,
        7,
    ])));
    round_trip(&Column::without_nulls(Values::I64(vec![])));
    round_trip(&column(&[true, true, true], Values::F64(vec![])));
    round_trip(&column(
        &[true, true, true],
        Values::Bytes(ByteValues::default()),
    ));
    // empty strings, alone and among others, in both variable-length codecs
    round_trip(&Column::without_nulls(Values::Bytes(bytes_of(&[
        vec![],
        vec![],
        vec![],
    ]))));
    round_trip(&Column::without_nulls(Values::Bytes(bytes_of(&[
        vec![],
        b"a".to_vec(),
        vec![],
    ]))));
    round_trip(&column(
        &[false, true, false],
        Values::Bool(vec![true, false]),
    ));
}

#[test]
fn the_dictionary_is_used_only_when_values_repeat() {
    let repeated: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("host_{}", i % 7).into_bytes())
        .collect();
    let c = Column::without_nulls(Values::Bytes(bytes_of(&repeated)));
    assert_eq!(codec_name(&encode(&c)), Some("dictionary"));
    round_trip(&c);
    let distinct: Vec<Vec<u8>> = (0..100).map(|i| format!("v{i}").into_bytes()).collect();
    let c = Column::without_nulls(Values::Bytes(bytes_of(&distinct)));
    assert_eq!(codec_name(&encode(&c)), Some("zstd"));
    round_trip(&c);
}

/// The format is a contract with data on disk: these bytes must keep decoding to these
/// values in every later build (a change needs a new FORMAT_VERSION and a reader of
/// the old one).
#[test]
fn golden_bytes_of_format_version_1() {
    let bools = column(
        &[false, true, false, false],
        Values::Bool(vec![true, false, true]),
    );
    let golden_bools: &[u8] = &[1, 0, 2, 4, 1, 0b0010, 0b101];
    assert_eq!(encode(&bools), golden_bools);
    assert!(same(&decode(golden_bools).unwrap(), &bools));

    let all_null = column(&[true, true], Values::I64(vec![]));
    let golden_null: &[u8] = &[1, 3, 0, 2, 2, 0b11];
    assert_eq!(encode(&all_null), golden_null);
    assert!(same(&decode(golden_null).unwrap(), &all_null));

    // pco's and zstd's own bytes are theirs to keep stable: decode a stored payload
    let ints = Column::without_nulls(Values::I64(vec![10, 20, 30, 40]));
    let stored = encode(&ints);
    assert_eq!(&stored[..5], &[1, 3, 6, 4, 0]);
    // codec 1 (pco's standalone form) is no longer written, still read
    let golden_ints = include_bytes!("golden_i64_v1.bin");
    assert_eq!(codec_name(golden_ints), Some("pco-v1"));
    assert!(same(&decode(golden_ints).unwrap(), &ints));
    let golden_wrapped = include_bytes!("golden_i64_wrapped.bin");
    assert_eq!(codec_name(golden_wrapped), Some("pco"));
    assert!(same(&decode(golden_wrapped).unwrap(), &ints));
    let floats = Column::without_nulls(Values::F64(vec![1.0, 5.0, -3.0, 4e12]));
    let golden_integral = include_bytes!("golden_integral_wrapped.bin");
    assert_eq!(codec_name(golden_integral), Some("pco-integral"));
    assert!(same(&decode(golden_integral).unwrap(), &floats));
    let text = Column::without_nulls(Values::Bytes(bytes_of(&[b"a".to_vec(), b"bc".to_vec()])));
    let golden_text = include_bytes!("golden_text_v1.bin");
    assert!(same(&decode(golden_text).unwrap(), &text));
}

#[test]
fn unknown_versions_kinds_and_codecs_are_errors() {
    let good = encode(&Column::without_nulls(Values::I32(vec![1, 2, 3])));
    for (pos, byte) in [(0, 2u8), (1, 9), (2, 77)] {
        let mut bad = good.clone();
        bad[pos] = byte;
        assert!(decode(&bad).is_err(), "byte {pos} = {byte}");
    }
    // a bitmap that disagrees with the header's NULL count
    assert!(decode(&[1, 0, 2, 2, 1, 0b11, 0]).is_err());
    // a count past the limit
    assert!(decode(&[1, 3, 1, 0xff, 0xff, 0xff, 0x7f, 0]).is_err());
}

fn values_strategy() -> impl Strategy<Value = Values> {
    prop_oneof![
        prop::collection::vec(any::<bool>(), 0..300).prop_map(Values::Bool),
        prop::collection::vec(any::<i16>(), 0..300).prop_map(Values::I16),
        prop::collection::vec(any::<i32>(), 0..300).prop_map(Values::I32),
        prop::collection::vec(any::<i64>(), 0..300).prop_map(Values::I64),
        prop::collection::vec(any::<u32>().prop_map(f32::from_bits), 0..300).prop_map(Values::F32),
        prop::collection::vec(any::<u64>().prop_map(f64::from_bits), 0..300).prop_map(Values::F64),
        // floats that hold integers (the integral codec), now and then one that does not
        (prop::collection::vec(-5000i64..5000, 0..300), any::<u64>()).prop_map(|(v, odd)| {
            let mut f: Vec<f64> = v.iter().map(|x| *x as f64).collect();
            if odd % 3 == 0 && !f.is_empty() {
                let at = (odd as usize / 3) % f.len();
                f[at] = [-0.0, 0.5, f64::NAN, 1e300][(odd as usize / 7) % 4];
            }
            Values::F64(f)
        }),
        prop::collection::vec(-70000i64..70000, 0..300)
            .prop_map(|v| Values::F32(v.iter().map(|x| *x as f32).collect())),
        // random walks, the shape of metrics
        (any::<i64>(), prop::collection::vec(-3i64..4, 0..300)).prop_map(|(s, d)| {
            let mut x = s / 2;
            Values::I64(
                d.iter()
                    .map(|v| {
                        x = x.wrapping_add(*v);
                        x
                    })
                    .collect(),
            )
        }),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..200)
            .prop_map(|v| Values::Bytes(bytes_of(&v))),
        prop::collection::vec(0u8..4, 0..200).prop_map(|v| Values::Bytes(bytes_of(
            &v.iter().map(|b| vec![*b; *b as usize]).collect::<Vec<_>>()
        ))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_columns_round_trip(values in values_strategy(), seed in any::<u64>()) {
        // NULLs spread over the rows by the seed: every non-NULL row holds one value
        let n = values.len();
        let extra = (seed % 7) as usize;
        let mut mask = vec![false; n + extra];
        let mut s = seed;
        let mut placed = 0;
        for i in 0..mask.len() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if placed < extra && (s >> 60) < 4 || mask.len() - i == extra - placed {
                mask[i] = true;
                placed += 1;
            }
        }
        round_trip(&column(&mask, values));
    }

    #[test]
    fn random_prefixes_decode_as_the_first_rows(
        values in values_strategy(), nulls in any::<u64>(), upto in 0usize..320
    ) {
        let n = values.len();
        let extra = (nulls % 5) as usize;
        let mut mask = vec![false; n + extra];
        let mut placed = 0;
        for i in 0..mask.len() {
            let left = mask.len() - i;
            if placed < extra && ((nulls >> (i % 64)) & 1 == 1 || left == extra - placed) {
                mask[i] = true;
                placed += 1;
            }
        }
        check_prefix(&column(&mask, values), upto);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn corrupted_columns_decode_to_errors_or_values_never_panics(
        values in values_strategy(), at in any::<usize>(), flip in 1u8.., cut in any::<usize>()
    ) {
        let good = encode(&Column::without_nulls(values));
        let mut bad = good.clone();
        let i = at % bad.len();
        bad[i] ^= flip;
        let _ = decode(&bad);
        let _ = decode(&good[..cut % good.len()]);
    }
}

/// Bytes a row of TSBS-shaped columns (1000 hosts' random walks of integers stored as
/// float8, and the time column at 10 s), at the default batch size: the figure the
/// issue's storage goal depends on. `cargo test -- --nocapture sizes` prints it.
#[test]
fn sizes_of_tsbs_shaped_columns() {
    let rows = 1000usize;
    let mut total = 0usize;
    let mut s = 42u64;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as i64
    };
    for _metric in 0..10 {
        let mut x = (rnd() % 100) as f64;
        let v: Vec<f64> = (0..rows)
            .map(|_| {
                x = (x + (rnd() % 3 - 1) as f64).clamp(0.0, 100.0);
                x
            })
            .collect();
        total += encode(&Column::without_nulls(Values::F64(v))).len();
    }
    let t: Vec<i64> = (0..rows as i64)
        .map(|i| 1_000_000_000 + i * 10_000_000)
        .collect();
    total += encode(&Column::without_nulls(Values::I64(t))).len();
    let per_row = total as f64 / rows as f64;
    println!("TSBS-shaped batch of {rows} rows: {per_row:.2} bytes a row (10 float8 + time)");
    assert!(per_row < 5.0, "{per_row} bytes a row");
}

/// Floats that all hold integers go to the integral codec (bit for bit back); one
/// -0.0, fraction, NaN, infinity or out-of-range value sends the column to pco's float
/// modes.
#[test]
fn integral_floats_take_the_integer_codec() {
    let walk: Vec<f64> = (0..1000).map(|i| ((i * 7) % 101) as f64 - 50.0).collect();
    let col = Column::without_nulls(Values::F64(walk.clone()));
    assert_eq!(codec_name(&encode(&col)), Some("pco-integral"));
    round_trip(&col);
    let big = vec![(1i64 << 53) as f64, i64::MIN as f64, 0.0, 42.0];
    let col = Column::without_nulls(Values::F64(big));
    assert_eq!(codec_name(&encode(&col)), Some("pco-integral"));
    round_trip(&col);
    for odd in [-0.0, 0.25, f64::NAN, f64::INFINITY, 1e300, 9.3e18] {
        let mut v = walk.clone();
        v[500] = odd;
        let col = Column::without_nulls(Values::F64(v));
        assert_eq!(codec_name(&encode(&col)), Some("pco"), "{odd}");
        round_trip(&col);
    }
    let f32s = Column::without_nulls(Values::F32(vec![1.0, -3.0, 16_777_216.0, 0.0]));
    assert_eq!(codec_name(&encode(&f32s)), Some("pco-integral"));
    round_trip(&f32s);
    // an integral payload read as another kind is an error
    let mut wrong = encode(&Column::without_nulls(Values::F64(vec![1.0, 2.0])));
    wrong[1] = Kind::I64 as u8;
    assert!(decode(&wrong).is_err());
}

#[test]
fn constant_and_tiny_columns_round_trip() {
    for n in [1usize, 2, 3, 7, 100, 1000] {
        round_trip(&Column::without_nulls(Values::I64(vec![42; n])));
        round_trip(&Column::without_nulls(Values::F64(vec![1.5; n])));
        round_trip(&Column::without_nulls(Values::I32(vec![-7; n])));
        round_trip(&Column::without_nulls(Values::I16(vec![3; n])));
        round_trip(&Column::without_nulls(Values::I64(
            (0..n as i64).map(|i| i * 10_000_000).collect(),
        )));
    }
}

/// A full batch of one series' timestamps every 10 s stores as a start and a step,
/// whatever the batch's length (pco's automatic mode alone takes 316 bytes at 1000).
#[test]
fn regular_timestamps_take_almost_nothing() {
    for n in [864usize, 999, 1000, 1001, 8640] {
        let t: Vec<i64> = (0..n as i64)
            .map(|i| 504_921_600_000_000 + i * 10_000_000)
            .collect();
        let bytes = encode(&Column::without_nulls(Values::I64(t.clone()))).len();
        assert!(bytes < 80, "{n} regular timestamps took {bytes} bytes");
        round_trip(&Column::without_nulls(Values::I64(t)));
    }
}

#[test]
fn split_off_keeps_every_value_once() {
    let texts: Vec<Vec<u8>> = (0..9).map(|i| vec![b'x'; i]).collect();
    for at in 0..=9 {
        let whole = Values::Bytes(bytes_of(&texts));
        let mut head = whole.clone();
        let tail = head.split_off(at);
        assert_eq!(head, Values::Bytes(bytes_of(&texts[..at])));
        assert_eq!(tail, Values::Bytes(bytes_of(&texts[at..])));
        let mut ints = Values::I64((0..9).collect());
        let rest = ints.split_off(at);
        assert_eq!((ints.len(), rest.len()), (at, 9 - at));
    }
}

/// Prefixes of long columns around pco's runs of 256 numbers, with and without NULLs.
#[test]
fn prefixes_of_long_columns() {
    let n = 2047usize;
    let walk: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101) as f64).collect();
    let ints: Vec<i64> = (0..n as i64).map(|i| 1_000_000 + i * 10).collect();
    let floats: Vec<f64> = (0..n).map(|i| i as f64 * 0.37).collect();
    let with_nulls = {
        let mask: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let vals: Vec<i64> = (0..n as i64).filter(|i| i % 3 != 0).collect();
        column(&mask, Values::I64(vals))
    };
    let cols = [
        Column::without_nulls(Values::F64(walk)),
        Column::without_nulls(Values::I64(ints)),
        Column::without_nulls(Values::F64(floats)),
        with_nulls,
    ];
    assert_eq!(codec_name(&encode(&cols[0])), Some("pco-integral"));
    assert_eq!(codec_name(&encode(&cols[2])), Some("pco"));
    for c in &cols {
        for upto in [0, 1, 255, 256, 257, 511, 512, 1000, 2046, 2047, 5000] {
            check_prefix(c, upto);
        }
    }
}
