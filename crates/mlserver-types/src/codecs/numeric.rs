//! `np`: numeric tensors as typed vectors.
//!
//! MLServer hands Python models `np.array(data, dtype).reshape(shape)`. In
//! Rust the data already sits in a typed vector ([`TensorData`]), so decoding
//! is borrowing it; the shape stays on the tensor. What numpy adds on top is
//! `astype`, which Rust models need too (a model computing in `f32` gets
//! `INT64` from one client and `FP64` from another): [`to_vec_as`] does that,
//! refusing conversions that would silently change a value.

use std::fmt;

use half::{bf16, f16};

use super::common::{content_type_parameters, unsupported, NUMPY};
use crate::{CodecError, Element, Tensor, TensorData};

/// A numeric element type (every datatype but BYTES): what the `np` codec
/// decodes to and [`to_vec_as`] converts between. Sealed: the conversions
/// rely on knowing every implementor.
pub trait Numeric: Element + Copy + PartialEq + fmt::Debug + private::Cast {}

impl<T: Element + Copy + PartialEq + fmt::Debug + private::Cast> Numeric for T {}

mod private {
    use super::*;

    /// A value on its way between two numeric types: integers (and bools)
    /// travel as `i128`, which holds every `u64` and `i64` exactly; floats
    /// as `f64`, which holds every FP16, BF16 and FP32 exactly.
    #[derive(Debug, Clone, Copy)]
    pub enum Num {
        Int(i128),
        Float(f64),
    }

    impl fmt::Display for Num {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Num::Int(v) => write!(f, "{v}"),
                Num::Float(v) => write!(f, "{v}"),
            }
        }
    }

    pub trait Cast: Sized {
        fn to_num(self) -> Num;
        /// `None` when the value has no faithful counterpart in `Self`.
        fn from_num(n: Num) -> Option<Self>;
    }

    macro_rules! int_cast {
        ($($t:ty),*) => {$(
            impl Cast for $t {
                fn to_num(self) -> Num {
                    Num::Int(self as i128)
                }
                fn from_num(n: Num) -> Option<Self> {
                    match n {
                        Num::Int(v) => <$t>::try_from(v).ok(),
                        // Whole floats convert (2.0 -> 2, as the JSON parser
                        // allows); `as i128` saturates beyond 2^127, which
                        // every target type then rejects.
                        Num::Float(v) if v.is_finite() && v.fract() == 0.0 => {
                            <$t>::try_from(v as i128).ok()
                        }
                        Num::Float(_) => None,
                    }
                }
            }
        )*};
    }
    int_cast!(u8, u16, u32, u64, i8, i16, i32, i64);

    impl Cast for bool {
        fn to_num(self) -> Num {
            Num::Int(i128::from(self))
        }
        /// Only 0 and 1: numpy's "nonzero is true" would lose the value.
        fn from_num(n: Num) -> Option<Self> {
            match n {
                Num::Int(0) => Some(false),
                Num::Int(1) => Some(true),
                Num::Float(0.0) => Some(false),
                Num::Float(1.0) => Some(true),
                _ => None,
            }
        }
    }

    /// Float targets round to nearest (as numpy and the JSON parser do) but
    /// refuse a finite value that would become infinite.
    macro_rules! float_cast {
        ($t:ty, $to:expr, $from:expr) => {
            impl Cast for $t {
                fn to_num(self) -> Num {
                    Num::Float($to(self))
                }
                fn from_num(n: Num) -> Option<Self> {
                    let v = match n {
                        Num::Int(v) => v as f64,
                        Num::Float(v) => v,
                    };
                    let x: $t = $from(v);
                    (!v.is_finite() || $to(x).is_finite()).then_some(x)
                }
            }
        };
    }
    float_cast!(f64, |x: f64| x, |v: f64| v);
    float_cast!(f32, f64::from, |v: f64| v as f32);
    float_cast!(f16, f16::to_f64, f16::from_f64);
    float_cast!(bf16, bf16::to_f64, bf16::from_f64);
}

use private::Num;

/// The elements of a numeric tensor in their native type, borrowed.
///
/// Fails unless `T` is the tensor's own element type (`f32` for FP32, ...);
/// use [`to_vec_as`] to convert.
pub fn decode_numeric<T: Numeric>(tensor: &Tensor) -> Result<&[T], CodecError> {
    tensor
        .data
        .as_slice::<T>()
        .ok_or_else(|| wrong_type::<T>(tensor))
}

/// Like [`decode_numeric`], taking the tensor so the vector is not copied.
pub fn into_numeric<T: Numeric>(tensor: Tensor) -> Result<Vec<T>, CodecError> {
    match tensor.data.into_vec::<T>() {
        Ok(v) => Ok(v),
        Err(data) => Err(wrong_type::<T>(&Tensor { data, ..tensor })),
    }
}

fn wrong_type<T: Numeric>(tensor: &Tensor) -> CodecError {
    unsupported(
        NUMPY,
        &tensor.name,
        format!(
            "tensor is {}, not {}; use to_vec_as to convert",
            tensor.data.datatype(),
            T::DATATYPE
        ),
    )
}

/// The elements of any numeric tensor (BOOL, integers, FP16/BF16/FP32/FP64)
/// converted to `T`, like numpy's `astype` but without silent damage:
///
/// - to an integer type: the value must fit and be whole (`2.0` -> `2`;
///   `2.5`, `NaN` or `300` for UINT8 fail);
/// - to BOOL: only 0 and 1;
/// - to a float type: rounded to nearest (so INT64 beyond 2^53 or FP64 to
///   FP32 may round), but a finite value that overflows to infinity fails.
///
/// Errors name the first offending element. BYTES tensors are refused.
pub fn to_vec_as<T: Numeric>(tensor: &Tensor) -> Result<Vec<T>, CodecError> {
    if let Some(same) = tensor.data.as_slice::<T>() {
        return Ok(same.to_vec());
    }
    let name = tensor.name.as_str();
    match &tensor.data {
        TensorData::Bool(v) => convert(name, v),
        TensorData::Uint8(v) => convert(name, v),
        TensorData::Uint16(v) => convert(name, v),
        TensorData::Uint32(v) => convert(name, v),
        TensorData::Uint64(v) => convert(name, v),
        TensorData::Int8(v) => convert(name, v),
        TensorData::Int16(v) => convert(name, v),
        TensorData::Int32(v) => convert(name, v),
        TensorData::Int64(v) => convert(name, v),
        TensorData::Fp16(v) => convert(name, v),
        TensorData::Bf16(v) => convert(name, v),
        TensorData::Fp32(v) => convert(name, v),
        TensorData::Fp64(v) => convert(name, v),
        TensorData::Bytes(_) => Err(unsupported(
            NUMPY,
            name,
            format!(
                "BYTES elements are not numbers and cannot become {}",
                T::DATATYPE
            ),
        )),
    }
}

/// Every numeric tensor as `f64`, the usual "just give me numbers" call.
/// INT64/UINT64 values beyond 2^53 are rounded.
pub fn to_f64_vec(tensor: &Tensor) -> Result<Vec<f64>, CodecError> {
    to_vec_as::<f64>(tensor)
}

fn convert<S: Numeric, T: Numeric>(name: &str, source: &[S]) -> Result<Vec<T>, CodecError> {
    source
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let n = s.to_num();
            T::from_num(n).ok_or_else(|| {
                let why = match n {
                    Num::Float(v) if !v.is_finite() || v.fract() != 0.0 => "is not a whole number",
                    _ => "is out of range",
                };
                unsupported(
                    NUMPY,
                    name,
                    format!(
                        "element {i} ({n}) {why} for {} (from {})",
                        T::DATATYPE,
                        S::DATATYPE
                    ),
                )
            })
        })
        .collect()
}

/// A numeric tensor tagged `content_type: "np"`, as MLServer's `NumpyCodec`
/// encodes an array. `shape` must hold `values.len()` elements. MLServer also
/// turns a 1-D shape into `[N, 1]`; pass `inject_batch_dimension(&shape)` to
/// do the same.
pub fn encode_numeric<T: Numeric>(
    name: impl Into<String>,
    shape: Vec<usize>,
    values: Vec<T>,
) -> Result<Tensor, CodecError> {
    Ok(Tensor::new(name, shape, T::wrap(values))?.with_parameters(content_type_parameters(NUMPY)))
}

/// MLServer's `inject_batch_dimension`: shapes of rank 0 or 1 get a trailing
/// `1` (`[N]` -> `[N, 1]`, `[]` -> `[1]`) so that axis 0 is always the batch
/// axis; higher ranks are unchanged. The element count never changes.
pub fn inject_batch_dimension(shape: &[usize]) -> Vec<usize> {
    let mut shape = shape.to_vec();
    if shape.len() <= 1 {
        shape.push(1);
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Datatype;

    fn t(data: impl Into<TensorData>) -> Tensor {
        let data = data.into();
        Tensor::new("x", vec![data.len()], data).unwrap()
    }

    #[test]
    fn decode_borrows_the_native_type_only() {
        let x = t(vec![1.5f32, 2.0]);
        assert_eq!(decode_numeric::<f32>(&x).unwrap(), &[1.5, 2.0]);
        let e = decode_numeric::<f64>(&x).unwrap_err().to_string();
        assert!(e.contains("FP32, not FP64") && e.contains("'x'"), "{e}");
        assert_eq!(into_numeric::<f32>(x.clone()).unwrap(), vec![1.5, 2.0]);
        assert!(into_numeric::<i32>(x).is_err());
    }

    #[test]
    fn widening_conversions_are_exact() {
        assert_eq!(to_f64_vec(&t(vec![1u8, 255])).unwrap(), vec![1.0, 255.0]);
        assert_eq!(to_f64_vec(&t(vec![true, false])).unwrap(), vec![1.0, 0.0]);
        assert_eq!(to_f64_vec(&t(vec![f16::from_f32(0.5)])).unwrap(), vec![0.5]);
        assert_eq!(
            to_f64_vec(&t(vec![bf16::from_f32(-2.0)])).unwrap(),
            vec![-2.0]
        );
        assert_eq!(
            to_vec_as::<i64>(&t(vec![u32::MAX])).unwrap(),
            vec![u32::MAX as i64]
        );
        assert_eq!(
            to_vec_as::<u64>(&t(vec![u64::MAX])).unwrap(),
            vec![u64::MAX]
        );
        assert_eq!(
            to_vec_as::<i32>(&t(vec![2.0f64, -3.0])).unwrap(),
            vec![2, -3]
        );
        assert_eq!(
            to_vec_as::<bool>(&t(vec![0i8, 1])).unwrap(),
            vec![false, true]
        );
        let zeros = to_vec_as::<bool>(&t(vec![-0.0f64, 1.0])).unwrap();
        assert_eq!(zeros, vec![false, true]);
    }

    #[test]
    fn lossy_conversions_fail_naming_the_element() {
        let e = to_vec_as::<u8>(&t(vec![1i64, 300]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("element 1 (300) is out of range for UINT8"),
            "{e}"
        );
        let e = to_vec_as::<i32>(&t(vec![1.5f64])).unwrap_err().to_string();
        assert!(
            e.contains("element 0 (1.5) is not a whole number for INT32"),
            "{e}"
        );
        assert!(to_vec_as::<i32>(&t(vec![f32::NAN])).is_err());
        assert!(to_vec_as::<u64>(&t(vec![-1i8])).is_err());
        assert!(to_vec_as::<bool>(&t(vec![2u8])).is_err());
        assert!(to_vec_as::<f16>(&t(vec![1e10f64])).is_err());
        assert!(to_vec_as::<f16>(&t(vec![100_000i32])).is_err());
        let e = to_vec_as::<f32>(&t(vec![b"a".to_vec()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("BYTES"), "{e}");
    }

    #[test]
    fn float_targets_round_and_keep_non_finite_values() {
        let v = to_vec_as::<f32>(&t(vec![0.1f64, f64::INFINITY, f64::NAN])).unwrap();
        assert_eq!(v[0], 0.1f32);
        assert_eq!(v[1], f32::INFINITY);
        assert!(v[2].is_nan());
        assert_eq!(
            to_vec_as::<f32>(&t(vec![16_777_217i64])).unwrap(),
            vec![16_777_216.0]
        );
    }

    #[test]
    fn encode_tags_np_and_checks_the_shape() {
        let y = encode_numeric("y", vec![2, 2], vec![1i32, 2, 3, 4]).unwrap();
        assert_eq!(y.datatype, Datatype::Int32);
        assert_eq!(y.content_type(), Some("np"));
        assert!(encode_numeric("y", vec![3], vec![1i32]).is_err());
    }

    #[test]
    fn batch_dimension_only_for_low_ranks() {
        assert_eq!(inject_batch_dimension(&[3]), vec![3, 1]);
        assert_eq!(inject_batch_dimension(&[]), vec![1]);
        assert_eq!(inject_batch_dimension(&[2, 3]), vec![2, 3]);
    }
}
