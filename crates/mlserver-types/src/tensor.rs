//! Typed tensor storage and its JSON (nested or flat) form.
//!
//! Data is parsed straight into a typed vector chosen by the tensor's
//! datatype, so a malformed element, an out-of-range integer or a wrong JSON
//! type is rejected while parsing rather than discovered by the model.

use std::fmt;

use half::{bf16, f16};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use crate::Datatype;

/// The elements of a tensor, flat and row-major, in the native type of its
/// datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// BOOL elements.
    Bool(Vec<bool>),
    /// UINT8 elements.
    Uint8(Vec<u8>),
    /// UINT16 elements.
    Uint16(Vec<u16>),
    /// UINT32 elements.
    Uint32(Vec<u32>),
    /// UINT64 elements.
    Uint64(Vec<u64>),
    /// INT8 elements.
    Int8(Vec<i8>),
    /// INT16 elements.
    Int16(Vec<i16>),
    /// INT32 elements.
    Int32(Vec<i32>),
    /// INT64 elements.
    Int64(Vec<i64>),
    /// FP16 elements.
    Fp16(Vec<f16>),
    /// BF16 elements.
    Bf16(Vec<bf16>),
    /// FP32 elements.
    Fp32(Vec<f32>),
    /// FP64 elements.
    Fp64(Vec<f64>),
    /// One byte string per element (UTF-8 text in JSON, raw in binary).
    Bytes(Vec<Vec<u8>>),
}

/// Applies the same expression to whichever typed vector a `TensorData` holds.
macro_rules! each_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Bf16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    /// An empty vector of the given datatype.
    pub fn empty(datatype: Datatype) -> Self {
        Self::with_capacity(datatype, 0)
    }

    /// An empty vector of the given datatype with room for `n` elements.
    pub fn with_capacity(datatype: Datatype, n: usize) -> Self {
        match datatype {
            Datatype::Bool => TensorData::Bool(Vec::with_capacity(n)),
            Datatype::Uint8 => TensorData::Uint8(Vec::with_capacity(n)),
            Datatype::Uint16 => TensorData::Uint16(Vec::with_capacity(n)),
            Datatype::Uint32 => TensorData::Uint32(Vec::with_capacity(n)),
            Datatype::Uint64 => TensorData::Uint64(Vec::with_capacity(n)),
            Datatype::Int8 => TensorData::Int8(Vec::with_capacity(n)),
            Datatype::Int16 => TensorData::Int16(Vec::with_capacity(n)),
            Datatype::Int32 => TensorData::Int32(Vec::with_capacity(n)),
            Datatype::Int64 => TensorData::Int64(Vec::with_capacity(n)),
            Datatype::Fp16 => TensorData::Fp16(Vec::with_capacity(n)),
            Datatype::Bf16 => TensorData::Bf16(Vec::with_capacity(n)),
            Datatype::Fp32 => TensorData::Fp32(Vec::with_capacity(n)),
            Datatype::Fp64 => TensorData::Fp64(Vec::with_capacity(n)),
            Datatype::Bytes => TensorData::Bytes(Vec::with_capacity(n)),
        }
    }

    /// The datatype this storage holds.
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Bool(_) => Datatype::Bool,
            TensorData::Uint8(_) => Datatype::Uint8,
            TensorData::Uint16(_) => Datatype::Uint16,
            TensorData::Uint32(_) => Datatype::Uint32,
            TensorData::Uint64(_) => Datatype::Uint64,
            TensorData::Int8(_) => Datatype::Int8,
            TensorData::Int16(_) => Datatype::Int16,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Fp16(_) => Datatype::Fp16,
            TensorData::Bf16(_) => Datatype::Bf16,
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each_variant!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as a slice of `T`, if `T` is this storage's native type.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::slice(self)
    }

    /// The elements as a vector of `T`, if `T` is this storage's native type.
    pub fn into_vec<T: Element>(self) -> Result<Vec<T>, Self> {
        T::take(self)
    }

    /// Splits the elements at `at`: `self` keeps `[0, at)`, the returned
    /// storage holds the rest. Copies only the returned part.
    ///
    /// # Panics
    /// If `at > self.len()`.
    pub fn split_off(&mut self, at: usize) -> TensorData {
        macro_rules! split {
            ($($variant:ident),*) => {
                match self {
                    $(TensorData::$variant(v) => TensorData::$variant(v.split_off(at)),)*
                }
            };
        }
        split!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Bf16, Fp32, Fp64,
            Bytes
        )
    }

    /// Appends `other`'s elements; both must hold the same datatype.
    pub fn extend(&mut self, other: TensorData) -> Result<(), TensorData> {
        macro_rules! ext {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((TensorData::$variant(a), TensorData::$variant(b)) => {
                        a.extend(b);
                        Ok(())
                    })*
                    (_, other) => Err(other),
                }
            };
        }
        ext!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Bf16, Fp32, Fp64,
            Bytes
        )
    }

    /// Parses JSON `data` (nested or flat, or a bare scalar as one element)
    /// into storage of `datatype`.
    pub fn from_json_value(
        datatype: Datatype,
        value: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        DataSeed {
            datatype,
            capacity: 0,
        }
        .deserialize(value)
    }

    /// Parses JSON `data` text into storage of `datatype`.
    pub fn from_json_str(datatype: Datatype, json: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        let data = DataSeed {
            datatype,
            capacity: 0,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(data)
    }
}

/// A Rust type that is the native element type of one datatype.
pub trait Element: Sized + Clone + 'static {
    /// The datatype whose native element type this is.
    const DATATYPE: Datatype;
    /// The elements, if `data` holds this type.
    fn slice(data: &TensorData) -> Option<&[Self]>;
    /// The elements, if `data` holds this type; otherwise `data` back.
    fn take(data: TensorData) -> Result<Vec<Self>, TensorData>;
    /// Storage holding these elements.
    fn wrap(values: Vec<Self>) -> TensorData;
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DATATYPE: Datatype = Datatype::$variant;
            fn slice(data: &TensorData) -> Option<&[Self]> {
                match data {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn take(data: TensorData) -> Result<Vec<Self>, TensorData> {
                match data {
                    TensorData::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
            fn wrap(values: Vec<Self>) -> TensorData {
                TensorData::$variant(values)
            }
        }

        impl From<Vec<$t>> for TensorData {
            fn from(values: Vec<$t>) -> Self {
                TensorData::$variant(values)
            }
        }
    };
}

element!(bool, Bool);
element!(u8, Uint8);
element!(u16, Uint16);
element!(u32, Uint32);
element!(u64, Uint64);
element!(i8, Int8);
element!(i16, Int16);
element!(i32, Int32);
element!(i64, Int64);
element!(f16, Fp16);
element!(bf16, Bf16);
element!(f32, Fp32);
element!(f64, Fp64);
element!(Vec<u8>, Bytes);

impl From<Vec<String>> for TensorData {
    fn from(values: Vec<String>) -> Self {
        TensorData::Bytes(values.into_iter().map(String::into_bytes).collect())
    }
}

impl From<Vec<&str>> for TensorData {
    fn from(values: Vec<&str>) -> Self {
        TensorData::Bytes(values.into_iter().map(|s| s.as_bytes().to_vec()).collect())
    }
}

// ---------------------------------------------------------------------------
// JSON -> typed storage

/// One JSON element converted to a native type, with the protocol's checks.
trait JsonElement: Sized {
    const EXPECTING: &'static str;
    fn from_u64<E: de::Error>(_v: u64) -> Result<Self, E> {
        Err(E::custom(format!(
            "expected {}, found an integer",
            Self::EXPECTING
        )))
    }
    fn from_i64<E: de::Error>(_v: i64) -> Result<Self, E> {
        Err(E::custom(format!(
            "expected {}, found an integer",
            Self::EXPECTING
        )))
    }
    fn from_f64<E: de::Error>(_v: f64) -> Result<Self, E> {
        Err(E::custom(format!(
            "expected {}, found a number",
            Self::EXPECTING
        )))
    }
    fn from_bool<E: de::Error>(_v: bool) -> Result<Self, E> {
        Err(E::custom(format!(
            "expected {}, found a boolean",
            Self::EXPECTING
        )))
    }
    fn from_str<E: de::Error>(_v: &str) -> Result<Self, E> {
        Err(E::custom(format!(
            "expected {}, found a string",
            Self::EXPECTING
        )))
    }
    fn from_null<E: de::Error>() -> Result<Self, E> {
        Err(E::custom(format!(
            "expected {}, found null",
            Self::EXPECTING
        )))
    }
}

macro_rules! json_int {
    ($t:ty, $name:literal) => {
        impl JsonElement for $t {
            const EXPECTING: &'static str = concat!("an ", $name, " integer");
            fn from_u64<E: de::Error>(v: u64) -> Result<Self, E> {
                <$t>::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is out of range for {}", $name)))
            }
            fn from_i64<E: de::Error>(v: i64) -> Result<Self, E> {
                <$t>::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is out of range for {}", $name)))
            }
            fn from_f64<E: de::Error>(v: f64) -> Result<Self, E> {
                // 3.0 is accepted as 3 (numpy would), 3.5 is not: truncating
                // silently changes the input. An integer literal too large
                // for 64 bits reaches here as the nearest f64 (2^64 for
                // 18446744073709551616), so only values an f64 holds
                // exactly (below 2^53) count: anything larger may be a
                // rounded out-of-range literal, which `as` would clamp.
                const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
                if v.fract() == 0.0
                    && v >= <$t>::MIN as f64
                    && v <= <$t>::MAX as f64
                    && v.abs() <= EXACT
                {
                    Ok(v as $t)
                } else {
                    Err(E::custom(format!("{v} is not a valid {} value", $name)))
                }
            }
        }
    };
}

json_int!(u8, "UINT8");
json_int!(u16, "UINT16");
json_int!(u32, "UINT32");
json_int!(u64, "UINT64");
json_int!(i8, "INT8");
json_int!(i16, "INT16");
json_int!(i32, "INT32");
json_int!(i64, "INT64");

macro_rules! json_float {
    ($t:ty, $name:literal, $from_f64:expr) => {
        impl JsonElement for $t {
            const EXPECTING: &'static str = concat!("a number (", $name, ")");
            fn from_u64<E: de::Error>(v: u64) -> Result<Self, E> {
                <Self as JsonElement>::from_f64(v as f64)
            }
            fn from_i64<E: de::Error>(v: i64) -> Result<Self, E> {
                <Self as JsonElement>::from_f64(v as f64)
            }
            fn from_f64<E: de::Error>(v: f64) -> Result<Self, E> {
                let x: $t = $from_f64(v);
                if v.is_finite() && !f64::from(x).is_finite() {
                    return Err(E::custom(format!("{v} is out of range for {}", $name)));
                }
                Ok(x)
            }
            // MLServer's numpy codec turns `null` into NaN.
            fn from_null<E: de::Error>() -> Result<Self, E> {
                Ok($from_f64(f64::NAN))
            }
        }
    };
}

json_float!(f32, "FP32", |v: f64| v as f32);
json_float!(f64, "FP64", |v: f64| v);
json_float!(f16, "FP16", f16::from_f64);
json_float!(bf16, "BF16", bf16::from_f64);

impl JsonElement for bool {
    const EXPECTING: &'static str = "a boolean";
    fn from_bool<E: de::Error>(v: bool) -> Result<Self, E> {
        Ok(v)
    }
    fn from_u64<E: de::Error>(v: u64) -> Result<Self, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::custom(format!("{v} is not a valid BOOL value"))),
        }
    }
    fn from_i64<E: de::Error>(v: i64) -> Result<Self, E> {
        Self::from_u64(
            u64::try_from(v).map_err(|_| E::custom(format!("{v} is not a valid BOOL value")))?,
        )
    }
}

impl JsonElement for Vec<u8> {
    const EXPECTING: &'static str = "a string (BYTES)";
    fn from_str<E: de::Error>(v: &str) -> Result<Self, E> {
        Ok(v.as_bytes().to_vec())
    }
}

/// Pushes the elements of a (possibly nested) JSON array into one flat vector.
struct Flatten<'a, T>(&'a mut Vec<T>);

impl<'de, T: JsonElement> DeserializeSeed<'de> for Flatten<'_, T> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: JsonElement> Visitor<'de> for Flatten<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} or a (nested) array of them", T::EXPECTING)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(T::from_u64(v)?);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(T::from_i64(v)?);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(T::from_f64(v)?);
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(T::from_bool(v)?);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(T::from_str(v)?);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push(T::from_null()?);
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(de::Error::custom(format!(
            "expected {}, found an object",
            T::EXPECTING
        )))
    }
}

/// FP32 or FP64 `data` from its JSON text. Arrays of plain numbers (what
/// clients send) are scanned here: serde's generic path spent ~300
/// instructions per element on them. Anything else (`null` as NaN, wrong
/// types, out-of-range values) goes through [`DataSeed`], so values and
/// errors are the same either way.
pub(crate) fn float_data_from_json(
    text: &str,
    datatype: Datatype,
    capacity: usize,
) -> Result<TensorData, serde_json::Error> {
    let bytes = text.as_bytes();
    let mut at = 0;
    skip_whitespace(bytes, &mut at);
    let fast = match datatype {
        Datatype::Fp32 => scan_floats(bytes, &mut at, capacity, |v| {
            let x = v as f32;
            // Out of FP32's range: the general path reports it.
            x.is_finite().then_some(x)
        })
        .map(TensorData::Fp32),
        Datatype::Fp64 => scan_floats(bytes, &mut at, capacity, Some).map(TensorData::Fp64),
        _ => None,
    };
    skip_whitespace(bytes, &mut at);
    match fast {
        Some(data) if at == bytes.len() => Ok(data),
        _ => {
            let mut de = serde_json::Deserializer::from_str(text);
            let data = DataSeed { datatype, capacity }.deserialize(&mut de)?;
            de.end()?;
            Ok(data)
        }
    }
}

/// Moves `at` past JSON whitespace.
pub(crate) fn skip_whitespace(bytes: &[u8], at: &mut usize) {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(*at) {
        *at += 1;
    }
}

/// Nesting the scanner follows at most; deeper data is the general path's.
const MAX_FLOAT_NESTING: usize = 64;

/// Reads one JSON value at `bytes[*at..]` made of numbers and (nested)
/// arrays of them, flattened, each number read as serde_json reads it and
/// passed through `cast`; `at` ends just after it. `None` for anything else
/// (`null`, strings, objects, nesting past 64) and for anything that is not
/// valid JSON (a trailing comma, `01`, `1.`), or that `cast` refuses: the
/// general path then answers, with its own error where there is one. The
/// syntax is checked in the same pass that reads the numbers.
pub(crate) fn scan_floats<T>(
    bytes: &[u8],
    at: &mut usize,
    capacity: usize,
    cast: impl Fn(f64) -> Option<T>,
) -> Option<Vec<T>> {
    let mut out = Vec::with_capacity(capacity.min(1 << 20));
    let mut depth = 0usize;
    loop {
        // A value: a number or an array.
        match *bytes.get(*at)? {
            b'[' => {
                *at += 1;
                skip_whitespace(bytes, at);
                if bytes.get(*at) != Some(&b']') {
                    depth += 1;
                    if depth > MAX_FLOAT_NESTING {
                        return None;
                    }
                    continue;
                }
                *at += 1;
            }
            b'-' | b'0'..=b'9' => out.push(cast(json_number(bytes, at)?)?),
            _ => return None,
        }
        // After a value: a comma and the next, or the end of arrays.
        loop {
            if depth == 0 {
                return Some(out);
            }
            // What clients mostly write: no space before the comma.
            if bytes.get(*at) == Some(&b',') {
                *at += 1;
                skip_whitespace(bytes, at);
                break;
            }
            skip_whitespace(bytes, at);
            match *bytes.get(*at)? {
                b',' => {
                    *at += 1;
                    skip_whitespace(bytes, at);
                    break;
                }
                b']' => {
                    *at += 1;
                    depth -= 1;
                }
                _ => return None,
            }
        }
    }
}

/// One JSON number at `bytes[*at..]` (which starts with `-` or a digit),
/// `at` then just after it; `None` if it breaks JSON's grammar or is out of
/// f64's range (serde_json's error to report).
///
/// Digits go straight into a mantissa, and numbers whose digits make at
/// most 2^53 with a power of ten within ±22 are one exact multiplication or
/// division (Clinger's fast path, correctly rounded: most of the 16- and
/// 17-digit numbers Python writes for float32 values); the others are
/// parsed by `str::parse`, also correctly rounded, as
/// serde_json (with `float_roundtrip`) does. Integers that way come out as
/// serde_json's integer-then-`as f64`, and `-0` is -0.0 in both.
fn json_number(bytes: &[u8], at: &mut usize) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    /// Appends the digits at `bytes[*i..]` to `mantissa`; how many.
    #[inline(always)]
    fn digits(bytes: &[u8], i: &mut usize, mantissa: &mut u64) -> usize {
        let start = *i;
        while let Some(&b) = bytes.get(*i) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            *i += 1;
        }
        *i - start
    }
    let start = *at;
    let mut i = start;
    let negative = bytes.get(i) == Some(&b'-');
    i += usize::from(negative);
    let mut mantissa = 0u64;
    let int_start = i;
    let int_digits = digits(bytes, &mut i, &mut mantissa);
    // JSON: one 0, or digits not starting with 0.
    if int_digits == 0 || (int_digits > 1 && bytes[int_start] == b'0') {
        return None;
    }
    let mut count = int_digits;
    let mut exponent = 0i64;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let fraction = digits(bytes, &mut i, &mut mantissa);
        if fraction == 0 {
            return None;
        }
        count += fraction;
        exponent = -(fraction as i64);
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        let sign = match bytes.get(i) {
            Some(b'-') => -1,
            _ => 1,
        };
        i += usize::from(matches!(bytes.get(i), Some(b'-' | b'+')));
        let exp_start = i;
        let mut e: i64 = 0;
        while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            e = (e * 10 + i64::from(d - b'0')).min(1 << 20);
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        exponent += sign * e;
    }
    *at = i;
    // Up to 19 digits the mantissa is exact in a u64; up to 2^53 it is
    // exact in an f64, and so is the power of ten up to 1e22.
    if count <= 19 && mantissa <= 1 << 53 && (-22..=22).contains(&exponent) {
        let m = mantissa as f64;
        let v = if exponent >= 0 {
            m * POW10[exponent as usize]
        } else {
            m / POW10[(-exponent) as usize]
        };
        Some(if negative { -v } else { v })
    } else {
        // The text is ASCII digits, signs, '.', 'e': valid UTF-8.
        std::str::from_utf8(&bytes[start..i])
            .ok()?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }
}

/// Deserializes JSON `data` into storage of a known datatype.
pub(crate) struct DataSeed {
    pub datatype: Datatype,
    /// Expected element count, used only to pre-allocate.
    pub capacity: usize,
}

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = TensorData;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<TensorData, D::Error> {
        fn flat<'de, T: JsonElement, D: de::Deserializer<'de>>(
            d: D,
            capacity: usize,
        ) -> Result<Vec<T>, D::Error> {
            let mut v = Vec::with_capacity(capacity.min(1 << 20));
            Flatten(&mut v).deserialize(d)?;
            Ok(v)
        }
        let c = self.capacity;
        Ok(match self.datatype {
            Datatype::Bool => TensorData::Bool(flat(deserializer, c)?),
            Datatype::Uint8 => TensorData::Uint8(flat(deserializer, c)?),
            Datatype::Uint16 => TensorData::Uint16(flat(deserializer, c)?),
            Datatype::Uint32 => TensorData::Uint32(flat(deserializer, c)?),
            Datatype::Uint64 => TensorData::Uint64(flat(deserializer, c)?),
            Datatype::Int8 => TensorData::Int8(flat(deserializer, c)?),
            Datatype::Int16 => TensorData::Int16(flat(deserializer, c)?),
            Datatype::Int32 => TensorData::Int32(flat(deserializer, c)?),
            Datatype::Int64 => TensorData::Int64(flat(deserializer, c)?),
            Datatype::Fp16 => TensorData::Fp16(flat(deserializer, c)?),
            Datatype::Bf16 => {
                return Err(de::Error::custom(
                    "BF16 tensors cannot be sent as JSON; use the binary tensor data extension",
                ))
            }
            Datatype::Fp32 => TensorData::Fp32(flat(deserializer, c)?),
            Datatype::Fp64 => TensorData::Fp64(flat(deserializer, c)?),
            Datatype::Bytes => TensorData::Bytes(flat(deserializer, c)?),
        })
    }
}

// ---------------------------------------------------------------------------
// typed storage -> JSON

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TensorData::Fp16(v) => serializer.collect_seq(v.iter().map(|x| x.to_f32())),
            TensorData::Bf16(v) => serializer.collect_seq(v.iter().map(|x| x.to_f32())),
            TensorData::Bytes(v) => {
                let mut seq = serializer.serialize_seq(Some(v.len()))?;
                for (i, b) in v.iter().enumerate() {
                    let s = std::str::from_utf8(b).map_err(|_| {
                        serde::ser::Error::custom(format!(
                            "BYTES element {i} is not valid UTF-8 and cannot be sent as JSON; \
                             request this output with the binary data extension or use the base64 content type"
                        ))
                    })?;
                    seq.serialize_element(s)?;
                }
                seq.end()
            }
            TensorData::Bool(v) => v.serialize(serializer),
            TensorData::Uint8(v) => v.serialize(serializer),
            TensorData::Uint16(v) => v.serialize(serializer),
            TensorData::Uint32(v) => v.serialize(serializer),
            TensorData::Uint64(v) => v.serialize(serializer),
            TensorData::Int8(v) => v.serialize(serializer),
            TensorData::Int16(v) => v.serialize(serializer),
            TensorData::Int32(v) => v.serialize(serializer),
            TensorData::Int64(v) => v.serialize(serializer),
            TensorData::Fp32(v) => v.serialize(serializer),
            TensorData::Fp64(v) => v.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general (serde) path, which the scanner must agree with.
    fn via_seed(text: &str, datatype: Datatype) -> Result<TensorData, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        DataSeed {
            datatype,
            capacity: 0,
        }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())
    }

    fn same_bits(a: &TensorData, b: &TensorData) -> bool {
        match (a, b) {
            (TensorData::Fp32(x), TensorData::Fp32(y)) => x
                .iter()
                .map(|v| v.to_bits())
                .eq(y.iter().map(|v| v.to_bits())),
            (TensorData::Fp64(x), TensorData::Fp64(y)) => x
                .iter()
                .map(|v| v.to_bits())
                .eq(y.iter().map(|v| v.to_bits())),
            _ => false,
        }
    }

    #[test]
    fn float_scanner_reads_numbers_as_the_serde_path_does() {
        for text in [
            "[1, 2.5, -3, 0]",
            "[[0.1, 0.2], [0.3, 1e-7]]",
            "[-0, -0.0, 1E+3, 2e-400, 123456789012345678901234567890]",
            "[9007199254740993, -9223372036854775808, 18446744073709551615]",
            " [ 1 ,\n 2 ] ",
            "[]",
            "[[], [[]]]",
            "3.25",
            "[3.4028235e38, 1.17549435e-38, 1e-46]",
        ] {
            for dt in [Datatype::Fp32, Datatype::Fp64] {
                let fast = float_data_from_json(text, dt, 4).unwrap();
                let slow = via_seed(text, dt).unwrap();
                assert!(same_bits(&fast, &slow), "{text} {dt}: {fast:?} vs {slow:?}");
            }
        }
    }

    #[test]
    fn other_data_takes_the_general_path_with_its_errors() {
        // null is NaN, as MLServer's numpy codec has it.
        let nan = float_data_from_json("[1, null]", Datatype::Fp32, 2).unwrap();
        assert!(matches!(&nan, TensorData::Fp32(v) if v[0] == 1.0 && v[1].is_nan()));
        for (text, dt) in [
            ("[1, \"a\"]", Datatype::Fp32),
            ("[true]", Datatype::Fp64),
            ("[1e39]", Datatype::Fp32),
            ("[1, 1e400]", Datatype::Fp64),
            ("{\"a\": 1}", Datatype::Fp64),
        ] {
            let fast = float_data_from_json(text, dt, 1).unwrap_err().to_string();
            let slow = via_seed(text, dt).unwrap_err();
            assert_eq!(fast, slow, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn float_scanner_matches_serde_on_short_decimals(
            mantissa in -10_000_000_000_000_000i64..10_000_000_000_000_000,
            exponent in -30i32..30,
            point in 0usize..18,
        ) {
            let digits = mantissa.unsigned_abs().to_string();
            let point = point.min(digits.len());
            let sign = if mantissa < 0 { "-" } else { "" };
            let (int, frac) = digits.split_at(digits.len() - point);
            let int = if int.is_empty() { "0" } else { int };
            let dotted = if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
            let text = format!("[{dotted}, {dotted}e{exponent}, {mantissa}E-{}]", exponent.unsigned_abs());
            for dt in [Datatype::Fp32, Datatype::Fp64] {
                let fast = float_data_from_json(&text, dt, 3).map_err(|e| e.to_string());
                let slow = via_seed(&text, dt);
                match (&fast, &slow) {
                    (Ok(f), Ok(s)) => proptest::prop_assert!(same_bits(f, s), "{} {:?} {:?}", text, f, s),
                    _ => proptest::prop_assert_eq!(&fast, &slow, "{}", text),
                }
            }
        }

        #[test]
        fn float_scanner_matches_serde_on_any_finite_values(
            values in proptest::collection::vec(proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO, 0..50),
            as_f32 in proptest::bool::ANY,
        ) {
            let text = serde_json::to_string(&values).unwrap();
            let dt = if as_f32 { Datatype::Fp32 } else { Datatype::Fp64 };
            match (float_data_from_json(&text, dt, values.len()), via_seed(&text, dt)) {
                (Ok(fast), Ok(slow)) => proptest::prop_assert!(same_bits(&fast, &slow), "{}", text),
                (Err(fast), Err(slow)) => proptest::prop_assert_eq!(fast.to_string(), slow),
                (fast, slow) => proptest::prop_assert!(false, "{} gave {:?} and {:?}", text, fast, slow),
            }
        }
    }

    proptest::proptest! {
        /// What Python clients send for float32 arrays (`tolist()` then
        /// `json.dumps`): each value's shortest float64 repr, mostly 16 or
        /// 17 digits.
        #[test]
        fn float_scanner_matches_serde_on_float32_values_written_as_float64(
            values in proptest::collection::vec(proptest::num::f32::NORMAL | proptest::num::f32::SUBNORMAL, 0..50),
        ) {
            let wide: Vec<f64> = values.iter().map(|v| f64::from(*v)).collect();
            let text = serde_json::to_string(&wide).unwrap();
            for dt in [Datatype::Fp32, Datatype::Fp64] {
                match (float_data_from_json(&text, dt, values.len()), via_seed(&text, dt)) {
                    (Ok(fast), Ok(slow)) => proptest::prop_assert!(same_bits(&fast, &slow), "{}", text),
                    (fast, slow) => proptest::prop_assert!(false, "{} gave {:?} and {:?}", text, fast, slow),
                }
            }
        }
    }

    #[test]
    fn nested_and_flat_parse_alike() {
        let a = TensorData::from_json_str(Datatype::Fp32, "[[1,2],[3,4.5]]").unwrap();
        let b = TensorData::from_json_str(Datatype::Fp32, "[1,2,3,4.5]").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0, 4.5]);
    }

    #[test]
    fn scalar_is_one_element() {
        let d = TensorData::from_json_str(Datatype::Bytes, "\"hi\"").unwrap();
        assert_eq!(d, TensorData::Bytes(vec![b"hi".to_vec()]));
    }

    #[test]
    fn integer_ranges_are_checked() {
        assert!(TensorData::from_json_str(Datatype::Int8, "[127,-128]").is_ok());
        let e = TensorData::from_json_str(Datatype::Int8, "[128]").unwrap_err();
        assert!(e.to_string().contains("out of range for INT8"), "{e}");
        assert!(TensorData::from_json_str(Datatype::Uint8, "[-1]").is_err());
        assert!(TensorData::from_json_str(Datatype::Int32, "[1.5]").is_err());
        assert_eq!(
            TensorData::from_json_str(Datatype::Int32, "[2.0]").unwrap(),
            TensorData::Int32(vec![2])
        );
        assert!(TensorData::from_json_str(Datatype::Uint64, "[18446744073709551615]").is_ok());
        assert!(TensorData::from_json_str(Datatype::Int64, "[-9223372036854775808]").is_ok());
        assert!(TensorData::from_json_str(Datatype::Int64, "[9223372036854775807]").is_ok());
        // Every integer type refuses the first value past either end,
        // 64-bit ones included (serde_json hands those over as f64).
        for (datatype, below, above) in [
            (Datatype::Int8, "-129", "128"),
            (Datatype::Int16, "-32769", "32768"),
            (Datatype::Int32, "-2147483649", "2147483648"),
            (
                Datatype::Int64,
                "-9223372036854775809",
                "9223372036854775808",
            ),
            (Datatype::Uint8, "-1", "256"),
            (Datatype::Uint16, "-1", "65536"),
            (Datatype::Uint32, "-1", "4294967296"),
            (Datatype::Uint64, "-1", "18446744073709551616"),
        ] {
            for v in [below, above] {
                let e = TensorData::from_json_str(datatype, &format!("[{v}]"));
                assert!(e.is_err(), "{datatype:?} accepted {v}: {e:?}");
            }
        }
        assert!(TensorData::from_json_str(Datatype::Uint64, "[1e30]").is_err());
        assert_eq!(
            TensorData::from_json_str(Datatype::Int64, "[4.0e15]").unwrap(),
            TensorData::Int64(vec![4_000_000_000_000_000])
        );
    }

    #[test]
    fn wrong_json_types_are_rejected() {
        assert!(TensorData::from_json_str(Datatype::Fp32, "[\"a\"]").is_err());
        assert!(TensorData::from_json_str(Datatype::Bytes, "[1]").is_err());
        assert!(TensorData::from_json_str(Datatype::Bool, "[2]").is_err());
        assert!(TensorData::from_json_str(Datatype::Fp32, "[{}]").is_err());
        assert!(TensorData::from_json_str(Datatype::Fp32, "[1e300]").is_err());
        assert!(TensorData::from_json_str(Datatype::Bf16, "[1]").is_err());
    }

    #[test]
    fn null_is_nan_for_floats_and_renders_back_as_null() {
        let d = TensorData::from_json_str(Datatype::Fp64, "[1, null]").unwrap();
        assert!(d.as_slice::<f64>().unwrap()[1].is_nan());
        assert_eq!(serde_json::to_string(&d).unwrap(), "[1.0,null]");
    }

    #[test]
    fn non_utf8_bytes_fail_json_serialization_clearly() {
        let d = TensorData::Bytes(vec![vec![0xff, 0xfe]]);
        let e = serde_json::to_string(&d).unwrap_err();
        assert!(e.to_string().contains("not valid UTF-8"));
    }

    #[test]
    fn fp16_goes_through_json_as_numbers() {
        let d = TensorData::from_json_str(Datatype::Fp16, "[0.5, 2]").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "[0.5,2.0]");
    }
}
