//! Property tests: every codec round-trips its values, including through the
//! JSON wire form, and nested JSON data parses like flat data.

use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};
use half::{bf16, f16};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

use super::common::content_type_parameters;
use super::*;
use crate::{InferenceRequest, Tensor, TensorData};

/// Serializes a tensor inside a request and parses it back, as a server
/// receiving it from a client would.
fn through_json(tensor: &Tensor) -> Tensor {
    let request = InferenceRequest::new(vec![tensor.clone()]);
    let text = serde_json::to_string(&request).expect("serializable");
    let mut back: InferenceRequest = serde_json::from_str(&text).expect("parses back");
    back.inputs.remove(0)
}

/// Equality that treats any NaN as equal to any NaN (JSON carries NaN as
/// `null`, which comes back as the canonical NaN).
fn same_data(a: &TensorData, b: &TensorData) -> bool {
    fn floats<T: Copy>(x: &[T], y: &[T], f: impl Fn(T) -> f64) -> bool {
        x.len() == y.len()
            && x.iter().zip(y).all(|(&p, &q)| {
                let (p, q) = (f(p), f(q));
                (p.is_nan() && q.is_nan()) || p == q
            })
    }
    match (a, b) {
        (TensorData::Fp16(x), TensorData::Fp16(y)) => floats(x, y, f16::to_f64),
        (TensorData::Bf16(x), TensorData::Bf16(y)) => floats(x, y, bf16::to_f64),
        (TensorData::Fp32(x), TensorData::Fp32(y)) => floats(x, y, f64::from),
        (TensorData::Fp64(x), TensorData::Fp64(y)) => floats(x, y, |v| v),
        (x, y) => x == y,
    }
}

#[test]
fn fp64_json_is_exact() {
    for x in [
        -903_179_973.351_737_3f64,
        2.213_623_875_593_639e233,
        0.1,
        1e-300,
    ] {
        let t = encode_numeric("x", vec![1], vec![x]).unwrap();
        assert_eq!(
            into_numeric::<f64>(through_json(&t)).unwrap(),
            vec![x],
            "{x}"
        );
    }
}

fn same_tensor(a: &Tensor, b: &Tensor) -> bool {
    a.name == b.name
        && a.shape == b.shape
        && a.datatype == b.datatype
        && a.parameters == b.parameters
        && same_data(&a.data, &b.data)
}

/// Floats JSON can carry: everything but infinities (which MLServer's JSON
/// cannot carry either).
fn json_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::*;
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | QUIET_NAN
}

fn json_f32() -> impl Strategy<Value = f32> {
    use proptest::num::f32::*;
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | QUIET_NAN
}

fn json_f16() -> impl Strategy<Value = f16> {
    any::<u16>().prop_map(|bits| {
        let x = f16::from_bits(bits);
        if x.is_infinite() {
            f16::MAX
        } else {
            x
        }
    })
}

/// `n` elements of datatype `dt`.
fn data_for(dt: Datatype, n: usize) -> BoxedStrategy<TensorData> {
    match dt {
        Datatype::Bool => vec(any::<bool>(), n).prop_map(TensorData::Bool).boxed(),
        Datatype::Uint8 => vec(any::<u8>(), n).prop_map(TensorData::Uint8).boxed(),
        Datatype::Uint16 => vec(any::<u16>(), n).prop_map(TensorData::Uint16).boxed(),
        Datatype::Uint32 => vec(any::<u32>(), n).prop_map(TensorData::Uint32).boxed(),
        Datatype::Uint64 => vec(any::<u64>(), n).prop_map(TensorData::Uint64).boxed(),
        Datatype::Int8 => vec(any::<i8>(), n).prop_map(TensorData::Int8).boxed(),
        Datatype::Int16 => vec(any::<i16>(), n).prop_map(TensorData::Int16).boxed(),
        Datatype::Int32 => vec(any::<i32>(), n).prop_map(TensorData::Int32).boxed(),
        Datatype::Int64 => vec(any::<i64>(), n).prop_map(TensorData::Int64).boxed(),
        Datatype::Fp16 => vec(json_f16(), n).prop_map(TensorData::Fp16).boxed(),
        Datatype::Bf16 => vec(any::<u16>().prop_map(bf16::from_bits), n)
            .prop_map(TensorData::Bf16)
            .boxed(),
        Datatype::Fp32 => vec(json_f32(), n).prop_map(TensorData::Fp32).boxed(),
        Datatype::Fp64 => vec(json_f64(), n).prop_map(TensorData::Fp64).boxed(),
        Datatype::Bytes => vec(any::<String>(), n)
            .prop_map(|v| TensorData::Bytes(v.into_iter().map(String::into_bytes).collect()))
            .boxed(),
    }
}

/// A valid tensor of any JSON-capable datatype, rank 0 to 3, maybe tagged
/// with a content type.
fn json_tensor() -> impl Strategy<Value = Tensor> {
    let datatypes: Vec<Datatype> = Datatype::ALL
        .into_iter()
        .filter(|d| d.json_capable())
        .collect();
    (
        prop::sample::select(datatypes),
        vec(0usize..4, 0..=3),
        prop::option::of(prop::sample::select(ALL.to_vec())),
    )
        .prop_flat_map(|(dt, shape, ct)| {
            let n = shape.iter().product();
            (Just(shape), data_for(dt, n), Just(ct))
        })
        .prop_map(|(shape, data, ct)| {
            let mut t = Tensor::new("t", shape, data).expect("shape fits the data");
            if let Some(ct) = ct {
                t.parameters = Some(content_type_parameters(ct));
            }
            t
        })
}

/// Flat JSON elements nested according to `shape` (a bare scalar for `[]`).
fn nest(flat: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] => flat[0].clone(),
        [_] => Value::Array(flat.to_vec()),
        [rows, inner @ ..] => {
            let chunk: usize = inner.iter().product();
            Value::Array(
                (0..*rows)
                    .map(|i| nest(&flat[i * chunk..(i + 1) * chunk], inner))
                    .collect(),
            )
        }
    }
}

fn datetime() -> impl Strategy<Value = IsoDateTime> {
    (
        1i32..=9999,
        1u32..=366,
        0u32..86_400,
        0u32..1_000_000_000,
        any::<bool>(),
        prop::option::of(-86_399i32..=86_399),
    )
        .prop_filter_map(
            "a real date",
            |(y, doy, secs, nanos, micros_only, offset)| {
                let nanos = if micros_only {
                    nanos / 1000 * 1000
                } else {
                    nanos
                };
                let naive = NaiveDate::from_yo_opt(y, doy)?
                    .and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)?);
                Some(match offset {
                    None => IsoDateTime::Naive(naive),
                    Some(o) => IsoDateTime::Aware(
                        FixedOffset::east_opt(o)?
                            .from_local_datetime(&naive)
                            .single()?,
                    ),
                })
            },
        )
}

macro_rules! numeric_round_trip {
    ($($test:ident: $t:ty => $strategy:expr;)*) => {$(
        proptest! {
            #[test]
            fn $test(values in vec($strategy, 0..40)) {
                let n = values.len();
                let t = encode_numeric("x", inject_batch_dimension(&[n]), values.clone()).unwrap();
                prop_assert_eq!(&t.shape, &vec![n, 1]);
                prop_assert_eq!(t.content_type(), Some(NUMPY));
                let back = through_json(&t);
                prop_assert!(same_tensor(&t, &back));
                let decoded: &[$t] = decode_numeric(&back).unwrap();
                prop_assert!(same_data(&<$t as Element>::wrap(decoded.to_vec()), &<$t as Element>::wrap(values.clone())));
                // Widening to f64 and back loses nothing for these types.
                let wide = to_f64_vec(&t).unwrap();
                let narrow = to_vec_as::<$t>(&encode_numeric("w", vec![n], wide).unwrap()).unwrap();
                prop_assert!(same_data(&<$t as Element>::wrap(narrow), &<$t as Element>::wrap(values)));
            }
        }
    )*};
}

use crate::{Datatype, Element};

numeric_round_trip! {
    bool_round_trip: bool => any::<bool>();
    u8_round_trip: u8 => any::<u8>();
    i16_round_trip: i16 => any::<i16>();
    u32_round_trip: u32 => any::<u32>();
    i32_round_trip: i32 => any::<i32>();
    f16_round_trip: f16 => json_f16();
    f32_round_trip: f32 => json_f32();
    f64_round_trip: f64 => json_f64();
}

proptest! {
    #[test]
    fn i64_u64_round_trip(a in vec(any::<i64>(), 0..20), b in vec(any::<u64>(), 0..20)) {
        let ta = encode_numeric("a", vec![a.len()], a.clone()).unwrap();
        prop_assert_eq!(into_numeric::<i64>(through_json(&ta)).unwrap(), a);
        let tb = encode_numeric("b", vec![b.len()], b.clone()).unwrap();
        prop_assert_eq!(into_numeric::<u64>(through_json(&tb)).unwrap(), b);
    }

    /// Narrowing either fails or gives back exactly the same number.
    #[test]
    fn narrowing_never_changes_a_value(values in vec(any::<i64>(), 1..20)) {
        let t = encode_numeric("x", vec![values.len()], values.clone()).unwrap();
        match to_vec_as::<i16>(&t) {
            Ok(narrow) => prop_assert!(narrow.iter().zip(&values).all(|(&n, &v)| i64::from(n) == v)),
            Err(_) => prop_assert!(values.iter().any(|&v| i16::try_from(v).is_err())),
        }
    }

    #[test]
    fn float_to_int_keeps_only_whole_numbers(values in vec(json_f64(), 1..20)) {
        let t = encode_numeric("x", vec![values.len()], values.clone()).unwrap();
        if let Ok(ints) = to_vec_as::<i64>(&t) {
            prop_assert!(ints.iter().zip(&values).all(|(&i, &v)| i as f64 == v && v.fract() == 0.0));
        }
    }

    #[test]
    fn strings_round_trip(values in vec(any::<String>(), 0..20)) {
        let t = encode_strings("s", values.clone());
        prop_assert_eq!(&t.shape, &vec![values.len(), 1]);
        prop_assert_eq!(decode_strings(&through_json(&t)).unwrap(), values.clone());
        let r = encode_request_strings(values.clone());
        let r: InferenceRequest = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        prop_assert_eq!(decode_request_strings(&r).unwrap(), values);
    }

    #[test]
    fn base64_round_trip(values in vec(vec(any::<u8>(), 0..64), 0..20)) {
        let t = encode_base64("b", &values);
        prop_assert_eq!(&t.shape, &vec![values.len(), 1]);
        prop_assert_eq!(decode_base64(&through_json(&t)).unwrap(), values);
    }

    #[test]
    fn datetime_round_trip(values in vec(datetime(), 0..20)) {
        for v in &values {
            prop_assert_eq!(v.to_string().parse::<IsoDateTime>().unwrap(), *v);
        }
        let t = encode_datetimes("d", values.clone());
        prop_assert_eq!(decode_datetimes(&through_json(&t)).unwrap(), values);
    }

    #[test]
    fn dynamic_layer_round_trips(values in vec(any::<String>(), 0..10)) {
        for ct in [STRING, BASE64] {
            let t = encode_output("o", Decoded::Strings(values.clone()), Some(ct)).unwrap();
            let back = decode_input(&through_json(&t), None).unwrap();
            let expected = match ct {
                STRING => Decoded::Strings(values.clone()),
                _ => Decoded::Bytes(values.iter().map(|s| s.clone().into_bytes()).collect()),
            };
            prop_assert_eq!(back, expected);
        }
    }

    #[test]
    fn tensor_json_round_trip(t in json_tensor()) {
        prop_assert!(same_tensor(&t, &through_json(&t)));
    }

    #[test]
    fn nested_and_flat_json_data_are_the_same(t in json_tensor()) {
        let flat = serde_json::to_value(&t.data).unwrap();
        let elements = flat.as_array().cloned().unwrap_or_default();
        let shape = serde_json::to_string(&t.shape).unwrap();
        let params = match &t.parameters {
            Some(p) => format!(r#","parameters":{}"#, serde_json::to_string(p).unwrap()),
            None => String::new(),
        };
        for data in [flat, nest(&elements, &t.shape)] {
            // Both key orders: `data` after `datatype` is parsed straight
            // into typed storage, `data` first goes through a JSON value.
            let header = format!(r#""name":"t","shape":{shape},"datatype":"{}"{params}"#, t.datatype);
            for text in [format!("{{{header},\"data\":{data}}}"), format!("{{\"data\":{data},{header}}}")] {
                let parsed: Tensor = serde_json::from_str(&text).unwrap();
                prop_assert!(same_tensor(&t, &parsed), "{}", text);
            }
        }
    }
}
