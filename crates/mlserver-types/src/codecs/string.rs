//! `str`: BYTES tensors as UTF-8 strings, and `pd_json`: as JSON values.
//!
//! JSON requests always carry BYTES as JSON strings, so they are valid UTF-8;
//! the binary extension and gRPC can carry anything, hence the checks.

use serde_json::Value;

use super::common::{bytes_column, bytes_elements, unsupported, PANDAS_JSON, STRING};
use crate::{CodecError, Tensor};

/// The elements of a BYTES tensor as strings, borrowed. Fails on a non-BYTES
/// tensor or on the first element that is not UTF-8, naming its index.
pub fn decode_strs(tensor: &Tensor) -> Result<Vec<&str>, CodecError> {
    bytes_elements(STRING, tensor)?
        .iter()
        .enumerate()
        .map(|(i, b)| {
            std::str::from_utf8(b).map_err(|e| {
                unsupported(
                    STRING,
                    &tensor.name,
                    format!("element {i} is not valid UTF-8 ({e})"),
                )
            })
        })
        .collect()
}

/// MLServer's `StringCodec.decode_input`: the elements of a BYTES tensor as
/// owned strings (see [`decode_strs`] for the checks).
pub fn decode_strings(tensor: &Tensor) -> Result<Vec<String>, CodecError> {
    Ok(decode_strs(tensor)?
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// MLServer's `StringCodec.encode_output`: a `[N, 1]` BYTES tensor of the
/// strings' UTF-8 bytes, tagged `content_type: "str"`.
pub fn encode_strings<S: Into<String>>(
    name: impl Into<String>,
    values: impl IntoIterator<Item = S>,
) -> Tensor {
    let elements = values.into_iter().map(|s| s.into().into_bytes()).collect();
    bytes_column(name.into(), elements, STRING)
}

/// A `pd_json` column: each BYTES element parsed as JSON (MLServer's pandas
/// codec runs `json.loads` on each). Errors name the element.
pub fn decode_json_elements(tensor: &Tensor) -> Result<Vec<Value>, CodecError> {
    bytes_elements(PANDAS_JSON, tensor)?
        .iter()
        .enumerate()
        .map(|(i, b)| {
            serde_json::from_slice(b).map_err(|e| {
                unsupported(
                    PANDAS_JSON,
                    &tensor.name,
                    format!("element {i} is not valid JSON ({e})"),
                )
            })
        })
        .collect()
}

/// How MLServer's pandas codec encodes a column of mixed or non-string
/// objects: each element as JSON text, `[N, 1]`, `content_type: "pd_json"`.
pub fn encode_json_elements(name: impl Into<String>, values: &[Value]) -> Tensor {
    let elements = values.iter().map(|v| v.to_string().into_bytes()).collect();
    bytes_column(name.into(), elements, PANDAS_JSON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Datatype;

    #[test]
    fn strings_round_trip_with_mlserver_shape() {
        let t = encode_strings("s", ["héllo", "", "日本"]);
        assert_eq!(t.shape, vec![3, 1]);
        assert_eq!(t.datatype, Datatype::Bytes);
        assert_eq!(t.content_type(), Some("str"));
        assert_eq!(decode_strings(&t).unwrap(), vec!["héllo", "", "日本"]);
        assert_eq!(decode_strs(&t).unwrap(), vec!["héllo", "", "日本"]);
    }

    #[test]
    fn invalid_utf8_names_the_element() {
        let t = Tensor::new("s", vec![2], vec![b"ok".to_vec(), vec![0xff]]).unwrap();
        let e = decode_strings(&t).unwrap_err().to_string();
        assert!(
            e.contains("element 1 is not valid UTF-8") && e.contains("'s'"),
            "{e}"
        );
    }

    #[test]
    fn non_bytes_tensors_are_refused() {
        let t = Tensor::new("n", vec![1], vec![1i32]).unwrap();
        let e = decode_strings(&t).unwrap_err().to_string();
        assert!(e.contains("expected a BYTES tensor, found INT32"), "{e}");
    }

    #[test]
    fn json_elements_round_trip() {
        let values = vec![
            serde_json::json!({"a": [1, 2]}),
            Value::Null,
            serde_json::json!("x"),
        ];
        let t = encode_json_elements("c", &values);
        assert_eq!(t.content_type(), Some("pd_json"));
        assert_eq!(t.shape, vec![3, 1]);
        assert_eq!(decode_json_elements(&t).unwrap(), values);
        let bad = Tensor::new("c", vec![2], vec!["1", "{"]).unwrap();
        let e = decode_json_elements(&bad).unwrap_err().to_string();
        assert!(e.contains("element 1 is not valid JSON"), "{e}");
    }
}
