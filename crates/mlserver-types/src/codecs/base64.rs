//! `base64`: BYTES tensors whose elements are base64 text of raw bytes, the
//! way arbitrary binary (images, audio) travels in JSON.

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::common::{bytes_column, bytes_elements, BASE64};
use crate::{CodecError, Tensor};

/// Python's `base64.b64decode(validate=True)`: standard alphabet, padding
/// required, unused trailing bits tolerated (Python ignores them; the
/// `base64` crate's default engine would reject e.g. `aGl=`).
const PYTHON_B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// MLServer's `Base64Codec.decode_input`: each BYTES element base64-decoded.
///
/// As in MLServer, an element that is **not** valid base64 (wrong alphabet,
/// missing padding, whitespace) is returned unchanged as raw bytes rather
/// than failing, so clients may send either form. The flip side, also as in
/// MLServer: raw data that happens to be valid base64 (`"abcd"`) is decoded.
/// Only a non-BYTES tensor is an error.
pub fn decode_base64(tensor: &Tensor) -> Result<Vec<Vec<u8>>, CodecError> {
    Ok(bytes_elements(BASE64, tensor)?
        .iter()
        .map(|b| PYTHON_B64.decode(b).unwrap_or_else(|_| b.clone()))
        .collect())
}

/// MLServer's `Base64Codec.encode_output`: each element base64-encoded
/// (standard alphabet, padded), `[N, 1]`, `content_type: "base64"`.
pub fn encode_base64<B: AsRef<[u8]>>(
    name: impl Into<String>,
    values: impl IntoIterator<Item = B>,
) -> Tensor {
    let elements = values
        .into_iter()
        .map(|b| PYTHON_B64.encode(b.as_ref()).into_bytes())
        .collect();
    bytes_column(name.into(), elements, BASE64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Datatype;

    fn bytes_tensor(elements: &[&str]) -> Tensor {
        Tensor::new("b", vec![elements.len()], elements.to_vec()).unwrap()
    }

    #[test]
    fn encodes_like_python() {
        let t = encode_base64("b", [b"hi".as_slice(), b"", &[0, 255]]);
        assert_eq!(t.shape, vec![3, 1]);
        assert_eq!(t.datatype, Datatype::Bytes);
        assert_eq!(t.content_type(), Some("base64"));
        assert_eq!(
            serde_json::to_string(&t.data).unwrap(),
            r#"["aGk=","","AP8="]"#
        );
        assert_eq!(
            decode_base64(&t).unwrap(),
            vec![b"hi".to_vec(), vec![], vec![0, 255]]
        );
    }

    #[test]
    fn invalid_base64_comes_back_raw() {
        let t = bytes_tensor(&["aGk", "not base64!", "aGk=\n", "aGk="]);
        let d = decode_base64(&t).unwrap();
        assert_eq!(d[0], b"aGk");
        assert_eq!(d[1], b"not base64!");
        assert_eq!(d[2], b"aGk=\n");
        assert_eq!(d[3], b"hi");
    }

    #[test]
    fn trailing_bits_are_ignored_as_python_does() {
        assert_eq!(decode_base64(&bytes_tensor(&["aGl="])).unwrap()[0], b"hi");
    }

    #[test]
    fn non_bytes_is_an_error() {
        let t = Tensor::new("n", vec![1], vec![1.0f32]).unwrap();
        assert!(decode_base64(&t).is_err());
    }
}
