//! The document tree both readers produce, mirroring XGBoost's own `Json`
//! value: numbers are float32 (XGBoost's `Number` is a `float`) or int64, and
//! UBJSON's strongly typed arrays stay packed instead of becoming one value
//! per element.

/// One parsed JSON/UBJSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Every non-integer number. XGBoost stores them as `float`, so parsing
    /// straight to `f32` (correctly rounded) reproduces its values exactly.
    Float(f32),
    Str(String),
    Array(Vec<Value>),
    /// Keys in document order; lookups return the first match, like
    /// XGBoost's `std::map::emplace` keeps the first insertion.
    Object(Vec<(String, Value)>),
    /// UBJSON `[$d` (and `[$D`, narrowed to `f32` as XGBoost does).
    F32s(Vec<f32>),
    /// UBJSON `[$i`, `[$U`, `[$I`, `[$l`, `[$L`, widened.
    Ints(Vec<i64>),
}

impl Value {
    /// The member `key` of an object, if this is an object that has it.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    /// An integer array (typed or not); booleans count as 0/1 because old
    /// models wrote `default_left` either way.
    pub(crate) fn to_ints(&self) -> Option<Vec<i64>> {
        match self {
            Value::Ints(v) => Some(v.clone()),
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Some(*i),
                    Value::Bool(b) => Some(i64::from(*b)),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// A float array (typed or not); integers are converted like XGBoost's
    /// `static_cast<float>`.
    pub(crate) fn to_f32s(&self) -> Option<Vec<f32>> {
        match self {
            Value::F32s(v) => Some(v.clone()),
            Value::Ints(v) => Some(v.iter().map(|&i| i as f32).collect()),
            Value::Array(items) => items.iter().map(Value::as_f32).collect(),
            _ => None,
        }
    }

    /// A number as `f32` (integers converted).
    pub(crate) fn as_f32(&self) -> Option<f32> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f32),
            _ => None,
        }
    }

    /// The length of an array, typed or not.
    pub(crate) fn array_len(&self) -> Option<usize> {
        match self {
            Value::Array(v) => Some(v.len()),
            Value::F32s(v) => Some(v.len()),
            Value::Ints(v) => Some(v.len()),
            _ => None,
        }
    }
}
