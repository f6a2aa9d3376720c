//! `np.array(data, dtype)` and `.reshape(shape)`, as far as MLServer's batch
//! client relies on them: it turns every input of a request line into a
//! NumPy array before sending it (`NumpyCodec.decode_input`), and every
//! output of a response back into one (`InferResult.as_numpy`). NumPy's
//! conversions decide what is sent (`1.7` as INT32 is `1`, `"2"` as FP32 is
//! `2.0`, `null` as FP32 is NaN, FP32 values are rounded to `f32`) and which
//! lines fail (a ragged list, `"x"` as a number, `300` as UINT8); they are
//! reproduced here element by element.

use half::f16;
use mlserver_types::{Datatype, TensorData};

use crate::json::Json;

/// The NumPy dtype data is read as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dtype {
    /// A numeric or BOOL datatype.
    Num(Datatype),
    /// `np.dtype(str)`: a list of strings sent as BYTES.
    Unicode,
    /// `np.dtype(("bytes", n))` (`S{n}`; `0` is unsized): BYTES data that is
    /// not a flat list of strings. Each element is ASCII-encoded and cut to
    /// `n` bytes, as NumPy does.
    FixedBytes(usize),
    /// `np.object_`: BYTES outputs, whose elements stay as parsed.
    Object,
}

/// A flat, row-major array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArrayData {
    /// Numbers, booleans, or byte strings (BYTES inputs).
    Typed(TensorData),
    /// Python objects of an `object` array (BYTES outputs).
    Objects(Vec<Json>),
}

impl ArrayData {
    pub(crate) fn len(&self) -> usize {
        match self {
            ArrayData::Typed(t) => t.len(),
            ArrayData::Objects(o) => o.len(),
        }
    }

    /// `data[start:end]`, with Python's clamping.
    pub(crate) fn slice(&self, start: usize, end: usize) -> ArrayData {
        let len = self.len();
        let (start, end) = (start.min(len), end.min(len).max(start.min(len)));
        macro_rules! cut {
            ($($variant:ident),*) => {
                match self {
                    $(ArrayData::Typed(TensorData::$variant(v)) => {
                        ArrayData::Typed(TensorData::$variant(v[start..end].to_vec()))
                    })*
                    ArrayData::Objects(v) => ArrayData::Objects(v[start..end].to_vec()),
                }
            };
        }
        cut!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Bf16, Fp32, Fp64,
            Bytes
        )
    }
}

/// `np.array(value, dtype)`: the array's dimensions and its elements.
pub(crate) fn np_array(value: &Json, dtype: Dtype) -> Result<(Vec<usize>, ArrayData), String> {
    let mut dims = Vec::new();
    discover_shape(value, &mut dims)?;
    let mut leaves = Vec::new();
    collect_leaves(value, &mut leaves);
    let data = match dtype {
        Dtype::Num(dt) => ArrayData::Typed(convert(&leaves, dt)?),
        Dtype::Unicode => ArrayData::Typed(TensorData::Bytes(
            leaves
                .iter()
                .map(|v| match v {
                    // NumPy's unicode arrays drop trailing NULs.
                    Json::Str(s) => Ok(s.trim_end_matches('\0').as_bytes().to_vec()),
                    other => Ok(other.py_str().into_bytes()),
                })
                .collect::<Result<_, String>>()?,
        )),
        Dtype::FixedBytes(n) => ArrayData::Typed(TensorData::Bytes(
            leaves
                .iter()
                .map(|v| fixed_bytes(v, n))
                .collect::<Result<_, String>>()?,
        )),
        Dtype::Object => ArrayData::Objects(leaves.into_iter().cloned().collect()),
    };
    Ok((dims, data))
}

/// The dimensions of nested lists; NumPy refuses ragged ones.
fn discover_shape(value: &Json, dims: &mut Vec<usize>) -> Result<(), String> {
    let mut level: Vec<&Json> = vec![value];
    loop {
        let Some(Json::Array(first)) = level.first() else {
            // Scalars all the way down at this depth: every sibling must be one too.
            if level.iter().any(|v| matches!(v, Json::Array(_))) {
                return Err(inhomogeneous(dims));
            }
            return Ok(());
        };
        let n = first.len();
        let mut next = Vec::with_capacity(n * level.len());
        for v in &level {
            match v {
                Json::Array(items) if items.len() == n => next.extend(items.iter()),
                _ => return Err(inhomogeneous(dims)),
            }
        }
        dims.push(n);
        if n == 0 {
            return Ok(());
        }
        level = next;
    }
}

fn inhomogeneous(dims: &[usize]) -> String {
    format!(
        "setting an array element with a sequence. The requested array has an inhomogeneous \
         shape after {} dimensions. The detected shape was {} + inhomogeneous part.",
        dims.len(),
        py_tuple(dims.iter().map(|d| *d as i128))
    )
}

/// A Python tuple of integers: `(2, 3)`, `(5,)`, `()`.
pub(crate) fn py_tuple(items: impl Iterator<Item = i128>) -> String {
    let items: Vec<String> = items.map(|i| i.to_string()).collect();
    match items.len() {
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

fn collect_leaves<'a>(value: &'a Json, out: &mut Vec<&'a Json>) {
    match value {
        Json::Array(items) => items.iter().for_each(|i| collect_leaves(i, out)),
        leaf => out.push(leaf),
    }
}

/// `.reshape(shape)`: the new dimensions, NumPy inferring one `-1` when
/// `infer` (outputs); inputs go on to tritonclient, which refuses any
/// negative dimension, so there `-1` fails too.
pub(crate) fn reshape(count: usize, shape: &[i128], infer: bool) -> Result<Vec<usize>, String> {
    let fail = || {
        format!(
            "cannot reshape array of size {count} into shape {}",
            py_tuple(shape.iter().copied())
        )
    };
    let unknown: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] == -1).collect();
    if shape.iter().any(|&d| d < -1) || unknown.len() > 1 || (!infer && !unknown.is_empty()) {
        if !infer && !unknown.is_empty() && shape.iter().all(|&d| d >= -1) {
            return Err(format!(
                "got unexpected numpy array shape [{}], expected [{}]",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return Err(fail());
    }
    let known: Option<usize> = shape
        .iter()
        .filter(|&&d| d >= 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?));
    let known = known.ok_or_else(fail)?;
    let mut dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(&i) = unknown.first() {
        if known == 0 || !count.is_multiple_of(known) {
            return Err(fail());
        }
        dims[i] = count / known;
    } else if known != count {
        return Err(fail());
    }
    Ok(dims)
}

fn fixed_bytes(value: &Json, n: usize) -> Result<Vec<u8>, String> {
    let text = value.py_str();
    if let Some((pos, c)) = text.char_indices().find(|(_, c)| !c.is_ascii()) {
        return Err(format!(
            "'ascii' codec can't encode character '\\u{:04x}' in position {}: ordinal not in range(128)",
            c as u32,
            text[..pos].chars().count()
        ));
    }
    let mut bytes = text.into_bytes();
    if n > 0 {
        bytes.truncate(n);
    }
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    Ok(bytes)
}

/// Converts scalars to a numeric dtype, element by element.
fn convert(leaves: &[&Json], dt: Datatype) -> Result<TensorData, String> {
    macro_rules! ints {
        ($variant:ident, $t:ty, $name:literal) => {
            TensorData::$variant(
                leaves
                    .iter()
                    .map(|v| {
                        let i = to_int(v)?;
                        <$t>::try_from(i)
                            .map_err(|_| format!("Python integer {i} out of bounds for {}", $name))
                    })
                    .collect::<Result<_, String>>()?,
            )
        };
    }
    Ok(match dt {
        Datatype::Bool => TensorData::Bool(leaves.iter().map(|v| to_bool(v)).collect()),
        Datatype::Uint8 => ints!(Uint8, u8, "uint8"),
        Datatype::Uint16 => ints!(Uint16, u16, "uint16"),
        Datatype::Uint32 => ints!(Uint32, u32, "uint32"),
        Datatype::Uint64 => ints!(Uint64, u64, "uint64"),
        Datatype::Int8 => ints!(Int8, i8, "int8"),
        Datatype::Int16 => ints!(Int16, i16, "int16"),
        Datatype::Int32 => ints!(Int32, i32, "int32"),
        Datatype::Int64 => ints!(Int64, i64, "int64"),
        Datatype::Fp16 => TensorData::Fp16(
            leaves
                .iter()
                .map(|v| to_float(v).map(f16::from_f64))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Fp32 => TensorData::Fp32(
            leaves
                .iter()
                .map(|v| to_float(v).map(|f| f as f32))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Fp64 => TensorData::Fp64(
            leaves
                .iter()
                .map(|v| to_float(v))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Bf16 | Datatype::Bytes => {
            return Err(format!("{dt} is not a numeric NumPy dtype"));
        }
    })
}

/// `bool(x)`, as NumPy casts Python objects to `bool`.
fn to_bool(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Int(i) => *i != 0,
        Json::Float(f) => *f != 0.0,
        Json::Str(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// `int(x)`, as NumPy reads Python objects into integer dtypes.
fn to_int(v: &Json) -> Result<i128, String> {
    match v {
        Json::Bool(b) => Ok(i128::from(*b)),
        Json::Int(i) => Ok(*i),
        Json::Float(f) if f.is_nan() => Err("cannot convert float NaN to integer".into()),
        Json::Float(f) if f.is_infinite() => Err("cannot convert float infinity to integer".into()),
        Json::Float(f) if f.abs() >= 1.7e38 => {
            Err("Python int too large to convert to C long".into())
        }
        Json::Float(f) => Ok(f.trunc() as i128),
        Json::Str(s) => py_int(s).ok_or_else(|| {
            format!(
                "invalid literal for int() with base 10: {}",
                crate::json::py_str_repr(s)
            )
        }),
        other => Err(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            other.py_type()
        )),
    }
}

/// `float(x)`, as NumPy reads Python objects into float dtypes.
fn to_float(v: &Json) -> Result<f64, String> {
    match v {
        Json::Null => Ok(f64::NAN),
        Json::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Json::Int(i) => Ok(*i as f64),
        Json::Float(f) => Ok(*f),
        Json::Str(s) => py_float(s).ok_or_else(|| {
            format!(
                "could not convert string to float: {}",
                crate::json::py_str_repr(s)
            )
        }),
        other => Err(format!(
            "float() argument must be a string or a real number, not '{}'",
            other.py_type()
        )),
    }
}

/// Removes the underscores Python allows between digits; `None` when one
/// is misplaced.
fn strip_underscores(s: &str) -> Option<String> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let ok =
                i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit();
            if !ok {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

/// Python's `int(str)`.
fn py_int(s: &str) -> Option<i128> {
    let s = strip_underscores(s.trim())?;
    let digits = s.strip_prefix(['+', '-']).unwrap_or(&s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Python's `float(str)`.
fn py_float(s: &str) -> Option<f64> {
    let s = strip_underscores(s.trim())?;
    let body = s.strip_prefix(['+', '-']).unwrap_or(&s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return s.to_ascii_lowercase().parse().ok();
    }
    // Rust accepts what Python does here except the spelled-out words, handled above.
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b"eE.+-".contains(&b))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Json {
        Json::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn numbers_convert_as_numpy_converts_them() {
        // The table printed by NumPy 2 in MLServer 1.7.1's venv.
        let (_, d) = np_array(
            &j(r#"[true, 1, 1.7, -1.7, "1", null]"#),
            Dtype::Num(Datatype::Fp32),
        )
        .unwrap();
        let ArrayData::Typed(TensorData::Fp32(v)) = d else {
            panic!("{d:?}")
        };
        assert_eq!(&v[..5], &[1.0, 1.0, 1.7, -1.7, 1.0]);
        assert!(v[5].is_nan());
        let (_, d) = np_array(
            &j(r#"[true, 1, -1, 300, 1.7, -1.7, "1"]"#),
            Dtype::Num(Datatype::Int32),
        )
        .unwrap();
        assert_eq!(
            d,
            ArrayData::Typed(TensorData::Int32(vec![1, 1, -1, 300, 1, -1, 1]))
        );
        let (_, d) = np_array(
            &j(r#"[1, -1, 300, 1.7, "1", "", null, "True"]"#),
            Dtype::Num(Datatype::Bool),
        )
        .unwrap();
        assert_eq!(
            d,
            ArrayData::Typed(TensorData::Bool(vec![
                true, true, true, true, true, false, false, true
            ]))
        );
        for bad in [r#"["1.5"]"#, r#"["True"]"#, "[null]", "[1e40]", r#"[{}]"#] {
            assert!(
                np_array(&j(bad), Dtype::Num(Datatype::Int64)).is_err(),
                "{bad}"
            );
        }
        for bad in ["[-1]", "[300]", "[-1.7]"] {
            let e = np_array(&j(bad), Dtype::Num(Datatype::Uint8)).unwrap_err();
            assert!(e.contains("out of bounds for uint8"), "{bad}: {e}");
        }
        assert!(np_array(&j(r#"["True"]"#), Dtype::Num(Datatype::Fp64)).is_err());
        let (_, d) = np_array(&j("[0.1, 1e40]"), Dtype::Num(Datatype::Fp16)).unwrap();
        let ArrayData::Typed(TensorData::Fp16(v)) = d else {
            panic!()
        };
        assert_eq!(f64::from(v[0]), 0.0999755859375);
        assert!(v[1].is_infinite());
    }

    #[test]
    fn nested_lists_must_be_rectangular() {
        let (dims, _) = np_array(&j("[[1, 2, 3], [4, 5, 6]]"), Dtype::Num(Datatype::Fp32)).unwrap();
        assert_eq!(dims, vec![2, 3]);
        let (dims, _) = np_array(&j("[[], []]"), Dtype::Num(Datatype::Fp32)).unwrap();
        assert_eq!(dims, vec![2, 0]);
        let (dims, _) = np_array(&j("5"), Dtype::Num(Datatype::Fp32)).unwrap();
        assert!(dims.is_empty());
        // What NumPy said for the same merged data.
        assert_eq!(
            np_array(
                &j("[1.1, 2.2, 3.3, [1, 2, 3], [4, 5, 6]]"),
                Dtype::Num(Datatype::Fp32)
            )
            .unwrap_err(),
            "setting an array element with a sequence. The requested array has an inhomogeneous \
             shape after 1 dimensions. The detected shape was (5,) + inhomogeneous part."
        );
        assert!(np_array(&j("[[1], [2, 3]]"), Dtype::Num(Datatype::Fp32)).is_err());
    }

    #[test]
    fn byte_strings_follow_numpy() {
        let (_, d) = np_array(&j(r#"["a\u0000", "wörld"]"#), Dtype::Unicode).unwrap();
        assert_eq!(
            d,
            ArrayData::Typed(TensorData::Bytes(vec![
                b"a".to_vec(),
                "wörld".as_bytes().to_vec()
            ]))
        );
        // Not a flat list of strings: S{shape[-1]}, cut and ASCII only.
        let (_, d) = np_array(&j(r#"[["hello", "world"]]"#), Dtype::FixedBytes(2)).unwrap();
        assert_eq!(
            d,
            ArrayData::Typed(TensorData::Bytes(vec![b"he".to_vec(), b"wo".to_vec()]))
        );
        let (_, d) = np_array(&j("[[1.5, true]]"), Dtype::FixedBytes(0)).unwrap();
        assert_eq!(
            d,
            ArrayData::Typed(TensorData::Bytes(vec![b"1.5".to_vec(), b"True".to_vec()]))
        );
        assert!(np_array(&j(r#"[["é"]]"#), Dtype::FixedBytes(1))
            .unwrap_err()
            .contains("'ascii' codec"));
    }

    #[test]
    fn reshape_checks_the_element_count() {
        assert_eq!(reshape(6, &[2, 3], false).unwrap(), vec![2, 3]);
        assert_eq!(
            reshape(5, &[2, 3], false).unwrap_err(),
            "cannot reshape array of size 5 into shape (2, 3)"
        );
        assert_eq!(reshape(6, &[-1, 3], true).unwrap(), vec![2, 3]);
        assert!(reshape(6, &[-1, 3], false).is_err());
        assert!(reshape(6, &[-2, 3], true).is_err());
        assert_eq!(reshape(1, &[], true).unwrap(), Vec::<usize>::new());
        assert_eq!(reshape(0, &[0, 4], false).unwrap(), vec![0, 4]);
    }

    #[test]
    fn slices_clamp_like_python() {
        let d = ArrayData::Typed(TensorData::Int64(vec![1, 2, 3]));
        assert_eq!(
            d.slice(1, 10),
            ArrayData::Typed(TensorData::Int64(vec![2, 3]))
        );
        assert_eq!(d.slice(5, 7), ArrayData::Typed(TensorData::Int64(vec![])));
    }

    #[test]
    fn python_number_parsing() {
        assert_eq!(py_int(" 1_000 "), Some(1000));
        assert_eq!(py_int("+5"), Some(5));
        assert_eq!(py_int("1.0"), None);
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_float("1e3"), Some(1000.0));
        assert_eq!(py_float(" -Infinity "), Some(f64::NEG_INFINITY));
        assert!(py_float("nan").unwrap().is_nan());
        assert_eq!(py_float("True"), None);
        assert_eq!(py_float(""), None);
    }
}
