//! Arrays: the payload's wire form (dtype, shape, base64 of little-endian
//! bytes), the input matrices a caller hands in, and the arrays `run`
//! returns, typed exactly as the numpy arrays scikit-learn returns.

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{HandoverError, Result};

/// A row-major input matrix, as numpy would hold it.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    /// Number of rows (samples).
    pub rows: usize,
    /// Number of columns (features).
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub data: MatrixData<'a>,
}

/// The values of a [`Matrix`], in the dtype numpy would hold them in: the
/// dtype decides how each estimator converts them.
#[derive(Clone, Copy, Debug)]
pub enum MatrixData<'a> {
    /// float64.
    F64(&'a [f64]),
    /// float32.
    F32(&'a [f32]),
    /// int64.
    I64(&'a [i64]),
    /// int32.
    I32(&'a [i32]),
}

impl MatrixData<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F64(v) => v.len(),
            Self::F32(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::I32(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numpy dtype name, for messages.
    pub fn dtype(&self) -> &'static str {
        match self {
            Self::F64(_) => "float64",
            Self::F32(_) => "float32",
            Self::I64(_) => "int64",
            Self::I32(_) => "int32",
        }
    }
}

/// An output: exactly the numpy array scikit-learn returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// `[n]` or `[n, k]`.
    pub shape: Vec<usize>,
    /// The values, C order.
    pub data: ArrayData,
}

/// The values of an [`Array`], by dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// float64.
    F64(Vec<f64>),
    /// float32.
    F32(Vec<f32>),
    /// int64.
    I64(Vec<i64>),
    /// int32.
    I32(Vec<i32>),
    /// bool.
    Bool(Vec<bool>),
    /// Unicode strings (numpy `<U`).
    Str(Vec<String>),
}

impl ArrayData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F64(v) => v.len(),
            Self::F32(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::Str(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload's dtype code (`<f8`, `str`, ...).
    pub fn dtype(&self) -> &'static str {
        match self {
            Self::F64(_) => "<f8",
            Self::F32(_) => "<f4",
            Self::I64(_) => "<i8",
            Self::I32(_) => "<i4",
            Self::Bool(_) => "|b1",
            Self::Str(_) => "str",
        }
    }
}

impl Array {
    /// A 2-D float or integer array as an input matrix (what a pipeline step
    /// hands the next); `None` for other shapes and dtypes.
    pub fn as_matrix(&self) -> Option<Matrix<'_>> {
        let [rows, cols] = self.shape[..] else {
            return None;
        };
        let data = match &self.data {
            ArrayData::F64(v) => MatrixData::F64(v),
            ArrayData::F32(v) => MatrixData::F32(v),
            ArrayData::I64(v) => MatrixData::I64(v),
            ArrayData::I32(v) => MatrixData::I32(v),
            ArrayData::Bool(_) | ArrayData::Str(_) => return None,
        };
        Some(Matrix { rows, cols, data })
    }
}

/// An array as the payload writes it.
#[derive(Debug, Deserialize)]
pub(crate) struct WireArray {
    dtype: String,
    shape: Vec<u64>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    items: Option<Vec<String>>,
}

/// A decoded wire array: any dtype the payload may use, parameters included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Wire {
    /// Anything an output may be.
    Out(ArrayData),
    /// `<u4` (bitsets).
    U32(Vec<u32>),
    /// `|u1` (flags).
    U8(Vec<u8>),
}

/// A decoded wire array with its shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Wire,
}

fn chunks<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

impl WireArray {
    /// Decodes and checks that the data holds exactly the shape's values.
    pub(crate) fn decode(&self, at: &str) -> Result<Decoded> {
        let mut count: usize = 1;
        let mut shape = Vec::with_capacity(self.shape.len());
        for &d in &self.shape {
            let d = usize::try_from(d)
                .map_err(|_| HandoverError::invalid(at, "a dimension does not fit in memory"))?;
            count = count
                .checked_mul(d)
                .ok_or_else(|| HandoverError::invalid(at, "the shape's size overflows"))?;
            shape.push(d);
        }
        if self.dtype == "str" {
            let items = self
                .items
                .as_ref()
                .ok_or_else(|| HandoverError::invalid(at, "a str array without items"))?;
            if items.len() != count {
                return Err(HandoverError::invalid(
                    at,
                    format!(
                        "shape {:?} needs {count} items, found {}",
                        shape,
                        items.len()
                    ),
                ));
            }
            return Ok(Decoded {
                shape,
                data: Wire::Out(ArrayData::Str(items.clone())),
            });
        }
        let size = match self.dtype.as_str() {
            "<f8" | "<i8" => 8,
            "<f4" | "<i4" | "<u4" => 4,
            "|u1" | "|b1" => 1,
            other => {
                return Err(HandoverError::invalid(
                    at,
                    format!("unknown dtype {other:?}"),
                ))
            }
        };
        let text = self
            .data
            .as_deref()
            .ok_or_else(|| HandoverError::invalid(at, "an array without data"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| HandoverError::invalid(at, format!("bad base64: {e}")))?;
        if Some(bytes.len()) != count.checked_mul(size) {
            return Err(HandoverError::invalid(
                at,
                format!(
                    "shape {:?} of {} needs {count} values, the data has {} bytes",
                    shape,
                    self.dtype,
                    bytes.len()
                ),
            ));
        }
        let data = match self.dtype.as_str() {
            "<f8" => Wire::Out(ArrayData::F64(chunks(&bytes, f64::from_le_bytes))),
            "<i8" => Wire::Out(ArrayData::I64(chunks(&bytes, i64::from_le_bytes))),
            "<f4" => Wire::Out(ArrayData::F32(chunks(&bytes, f32::from_le_bytes))),
            "<i4" => Wire::Out(ArrayData::I32(chunks(&bytes, i32::from_le_bytes))),
            "<u4" => Wire::U32(chunks(&bytes, u32::from_le_bytes)),
            "|u1" => Wire::U8(bytes),
            _ => {
                let mut flags = Vec::with_capacity(bytes.len());
                for b in bytes {
                    match b {
                        0 => flags.push(false),
                        1 => flags.push(true),
                        _ => return Err(HandoverError::invalid(at, "a bool that is not 0 or 1")),
                    }
                }
                Wire::Out(ArrayData::Bool(flags))
            }
        };
        Ok(Decoded { shape, data })
    }
}

impl Decoded {
    fn expect_shape(&self, at: &str, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return Err(HandoverError::invalid(
                at,
                format!("shape {:?}, expected {:?}", self.shape, shape),
            ));
        }
        Ok(())
    }

    /// float64 values of the given shape.
    pub(crate) fn f64s(self, at: &str, shape: &[usize]) -> Result<Vec<f64>> {
        self.expect_shape(at, shape)?;
        match self.data {
            Wire::Out(ArrayData::F64(v)) => Ok(v),
            _ => Err(HandoverError::invalid(at, "expected dtype <f8")),
        }
    }

    /// Like [`Self::f64s`], refusing NaN and infinities: a fitted
    /// scikit-learn estimator never holds them there.
    pub(crate) fn finite_f64s(self, at: &str, shape: &[usize]) -> Result<Vec<f64>> {
        let v = self.f64s(at, shape)?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(HandoverError::invalid(
                at,
                format!("value {i} is {}, parameters must be finite", v[i]),
            ));
        }
        Ok(v)
    }

    /// Integer values (int64 or int32 on the wire) of the given shape.
    pub(crate) fn i64s(self, at: &str, shape: &[usize]) -> Result<Vec<i64>> {
        self.expect_shape(at, shape)?;
        match self.data {
            Wire::Out(ArrayData::I64(v)) => Ok(v),
            Wire::Out(ArrayData::I32(v)) => Ok(v.into_iter().map(i64::from).collect()),
            _ => Err(HandoverError::invalid(at, "expected an integer dtype")),
        }
    }

    /// 0/1 flags (`|u1` or `|b1`) of the given shape.
    pub(crate) fn flags(self, at: &str, shape: &[usize]) -> Result<Vec<bool>> {
        self.expect_shape(at, shape)?;
        match self.data {
            Wire::Out(ArrayData::Bool(v)) => Ok(v),
            Wire::U8(v) => v
                .into_iter()
                .map(|b| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(HandoverError::invalid(at, "a flag that is not 0 or 1")),
                })
                .collect(),
            _ => Err(HandoverError::invalid(at, "expected dtype |u1")),
        }
    }

    /// uint32 values (bitsets); the caller checks the shape.
    pub(crate) fn u32s(self, at: &str) -> Result<Vec<u32>> {
        match self.data {
            Wire::U32(v) => Ok(v),
            _ => Err(HandoverError::invalid(at, "expected dtype <u4")),
        }
    }

    /// As an output array (probe inputs and outputs, class labels).
    pub(crate) fn into_array(self, at: &str) -> Result<Array> {
        match self.data {
            Wire::Out(data) => Ok(Array {
                shape: self.shape,
                data,
            }),
            _ => Err(HandoverError::invalid(at, "not an output dtype")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(json: &str) -> WireArray {
        serde_json::from_str(json).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn decodes_little_endian_floats() {
        let bytes: Vec<u8> = [1.5f64, -0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = wire(&format!(
            r#"{{"dtype":"<f8","shape":[2],"data":"{}"}}"#,
            b64(&bytes)
        ));
        let v = a.decode("x").unwrap().f64s("x", &[2]).unwrap();
        assert_eq!(v[0], 1.5);
        assert!(v[1].is_sign_negative());
    }

    #[test]
    fn refuses_wrong_lengths_and_bad_base64() {
        let bytes = 7i64.to_le_bytes();
        let a = wire(&format!(
            r#"{{"dtype":"<i8","shape":[2],"data":"{}"}}"#,
            b64(&bytes)
        ));
        assert!(a.decode("x").is_err());
        let a = wire(r#"{"dtype":"<i8","shape":[1],"data":"AAAA!AAA"}"#);
        assert!(a.decode("x").is_err());
        let truncated = &b64(&bytes)[..5];
        let a = wire(&format!(
            r#"{{"dtype":"<i8","shape":[1],"data":"{truncated}"}}"#
        ));
        assert!(a.decode("x").is_err());
        let a = wire(r#"{"dtype":"<c16","shape":[0],"data":""}"#);
        assert!(a.decode("x").is_err());
    }

    #[test]
    fn refuses_overflowing_shapes() {
        let a = wire(r#"{"dtype":"<f8","shape":[4294967296,4294967296,16],"data":""}"#);
        assert!(a.decode("x").is_err());
    }

    #[test]
    fn strings_need_matching_items() {
        let a = wire(r#"{"dtype":"str","shape":[2],"items":["a","b"]}"#);
        let d = a.decode("x").unwrap().into_array("x").unwrap();
        assert_eq!(d.data, ArrayData::Str(vec!["a".into(), "b".into()]));
        let a = wire(r#"{"dtype":"str","shape":[3],"items":["a"]}"#);
        assert!(a.decode("x").is_err());
    }

    #[test]
    fn finite_refuses_nan() {
        let bytes = f64::NAN.to_le_bytes();
        let a = wire(&format!(
            r#"{{"dtype":"<f8","shape":[1],"data":"{}"}}"#,
            b64(&bytes)
        ));
        assert!(a.decode("x").unwrap().finite_f64s("x", &[1]).is_err());
    }

    #[test]
    fn flags_are_zero_or_one() {
        let a = wire(&format!(
            r#"{{"dtype":"|u1","shape":[2],"data":"{}"}}"#,
            b64(&[0, 2])
        ));
        assert!(a.decode("x").unwrap().flags("x", &[2]).is_err());
        let a = wire(&format!(
            r#"{{"dtype":"|b1","shape":[2],"data":"{}"}}"#,
            b64(&[0, 2])
        ));
        assert!(a.decode("x").is_err());
    }
}
