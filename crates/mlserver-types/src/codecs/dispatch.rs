//! The dynamic layer: choosing a codec from `content_type` the way
//! MLServer's `MLModel.decode`/`encode` do, for runtimes that do not know
//! ahead of time what clients will send.

use super::base64::{decode_base64, encode_base64};
use super::common::{
    bytes_column, content_type_parameters, unsupported, BASE64, DATETIME, NUMPY, STRING,
};
use super::datetime::{decode_datetimes, encode_datetimes, IsoDateTime};
use super::numeric::inject_batch_dimension;
use super::string::{decode_strings, decode_strs, encode_strings};
use crate::{CodecError, InferenceRequest, MetadataTensor, RequestOutput, Tensor, TensorData};

/// A tensor decoded by the codec its content type names.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// `np` on a numeric tensor: the typed elements (the shape stays on the
    /// tensor, where numpy would reshape).
    Numeric(TensorData),
    /// `str`.
    Strings(Vec<String>),
    /// `base64`, or `np` on a BYTES tensor (numpy would give a bytes array;
    /// the raw elements are its closest typed form).
    Bytes(Vec<Vec<u8>>),
    /// `datetime`.
    Datetimes(Vec<IsoDateTime>),
    /// No content type, or one no input codec handles (`pd`, `pd_json`, a
    /// typo): the data untouched, as MLServer returns `request_input.data`.
    Raw(TensorData),
}

impl Decoded {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Decoded::Numeric(d) | Decoded::Raw(d) => d.len(),
            Decoded::Strings(v) => v.len(),
            Decoded::Bytes(v) => v.len(),
            Decoded::Datetimes(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content type MLServer would pick for this payload's type
    /// (`find_input_codec_by_payload`); `None` for [`Decoded::Raw`].
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Decoded::Numeric(_) => Some(NUMPY),
            Decoded::Strings(_) => Some(STRING),
            Decoded::Bytes(_) => Some(BASE64),
            Decoded::Datetimes(_) => Some(DATETIME),
            Decoded::Raw(_) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Decoded::Numeric(d) => format!("{} numbers", d.datatype()),
            Decoded::Strings(_) => "strings".to_owned(),
            Decoded::Bytes(_) => "byte strings".to_owned(),
            Decoded::Datetimes(_) => "datetimes".to_owned(),
            Decoded::Raw(d) => format!("raw {} data", d.datatype()),
        }
    }
}

/// The content types that have an input-level codec here.
pub(super) fn input_codec(content_type: &str) -> Option<&'static str> {
    [NUMPY, STRING, BASE64, DATETIME]
        .into_iter()
        .find(|c| *c == content_type)
}

/// The metadata entry named `name` (model settings' `inputs`/`outputs`).
pub fn find_metadata<'a>(metadata: &'a [MetadataTensor], name: &str) -> Option<&'a MetadataTensor> {
    metadata.iter().find(|m| m.name == name)
}

/// An input's content type: its own `parameters.content_type`, else that of
/// its model metadata (`metadata` is the entry for this input; see
/// [`find_metadata`]). Request values always win over metadata.
pub fn input_content_type<'a>(
    input: &'a Tensor,
    metadata: Option<&'a MetadataTensor>,
) -> Option<&'a str> {
    input
        .content_type()
        .or_else(|| metadata.and_then(MetadataTensor::content_type))
}

/// The request-level content type: the request's `parameters.content_type`,
/// else the model's default (`ModelSettings.parameters.content_type`).
pub fn request_content_type<'a>(
    request: &'a InferenceRequest,
    model_default: Option<&'a str>,
) -> Option<&'a str> {
    request.content_type().or(model_default)
}

/// An output's content type: the one the client asked for in
/// `outputs[].parameters`, else the output's model metadata. `None` means
/// "pick by payload type" ([`Decoded::content_type`]).
pub fn output_content_type<'a>(
    requested: Option<&'a RequestOutput>,
    metadata: Option<&'a MetadataTensor>,
) -> Option<&'a str> {
    requested
        .and_then(RequestOutput::content_type)
        .or_else(|| metadata.and_then(MetadataTensor::content_type))
}

/// MLServer's `MLModel.decode`: decodes `input` with the codec its content
/// type names ([`input_content_type`]). Unknown content types are ignored
/// and give [`Decoded::Raw`], as in MLServer; a known codec that cannot
/// handle the data (`str` on INT32, invalid UTF-8) is an error.
pub fn decode_input(
    input: &Tensor,
    metadata: Option<&MetadataTensor>,
) -> Result<Decoded, CodecError> {
    decode_with(
        input_content_type(input, metadata).and_then(input_codec),
        input,
    )
}

pub(super) fn decode_with(
    codec: Option<&'static str>,
    input: &Tensor,
) -> Result<Decoded, CodecError> {
    Ok(match codec {
        Some(NUMPY) => match &input.data {
            TensorData::Bytes(v) => Decoded::Bytes(v.clone()),
            data => Decoded::Numeric(data.clone()),
        },
        Some(STRING) => Decoded::Strings(decode_strings(input)?),
        Some(BASE64) => Decoded::Bytes(decode_base64(input)?),
        Some(DATETIME) => Decoded::Datetimes(decode_datetimes(input)?),
        _ => Decoded::Raw(input.data.clone()),
    })
}

/// Decodes every input of a request, in order, each with its own content
/// type or that of the same-named entry of `metadata` (the model's inputs).
pub fn decode_inputs(
    request: &InferenceRequest,
    metadata: &[MetadataTensor],
) -> Result<Vec<Decoded>, CodecError> {
    request
        .inputs
        .iter()
        .map(|input| decode_input(input, find_metadata(metadata, &input.name)))
        .collect()
}

/// MLServer's `MLModel.encode`: `value` as an output tensor named `name`,
/// with the codec `content_type` names (see [`output_content_type`]), else
/// the one its payload type implies ([`Decoded::content_type`]). Content
/// types without an input codec (`pd`, `pd_json`, typos) fall back to the
/// payload type, as in MLServer.
///
/// Shapes follow MLServer: list-like codecs give `[N, 1]`, numeric data
/// `[N, 1]` too (`inject_batch_dimension` on a flat array; set
/// `tensor.shape` afterwards, or use [`encode_numeric`](crate::codecs::encode_numeric), for other
/// shapes); [`Decoded::Raw`] without a content type stays `[N]` with no
/// content type. Combinations that make no sense (datetimes as `np`,
/// numbers as `str`) are errors.
pub fn encode_output(
    name: impl Into<String>,
    value: Decoded,
    content_type: Option<&str>,
) -> Result<Tensor, CodecError> {
    let name = name.into();
    let codec = content_type
        .and_then(input_codec)
        .or_else(|| value.content_type());
    let Some(codec) = codec else {
        // Only `Raw` has no payload codec.
        let data = match value {
            Decoded::Raw(d) => d,
            other => return Err(unsupported("raw", &name, other.describe())),
        };
        return Ok(Tensor {
            shape: vec![data.len()],
            datatype: data.datatype(),
            name,
            parameters: None,
            data,
        });
    };
    match (codec, value) {
        (NUMPY, Decoded::Numeric(data) | Decoded::Raw(data)) => Ok(Tensor {
            shape: inject_batch_dimension(&[data.len()]),
            datatype: data.datatype(),
            parameters: Some(content_type_parameters(NUMPY)),
            name,
            data,
        }),
        (NUMPY, Decoded::Strings(v)) => Ok(bytes_column(
            name,
            v.into_iter().map(String::into_bytes).collect(),
            NUMPY,
        )),
        (NUMPY, Decoded::Bytes(v)) => Ok(bytes_column(name, v, NUMPY)),
        (STRING, Decoded::Strings(v)) => Ok(encode_strings(name, v)),
        (STRING, Decoded::Bytes(v) | Decoded::Raw(TensorData::Bytes(v))) => {
            let column = bytes_column(name, v, STRING);
            decode_strs(&column)?;
            Ok(column)
        }
        (BASE64, Decoded::Strings(v)) => Ok(encode_base64(name, v)),
        (BASE64, Decoded::Bytes(v) | Decoded::Raw(TensorData::Bytes(v))) => {
            Ok(encode_base64(name, v))
        }
        (DATETIME, Decoded::Datetimes(v)) => Ok(encode_datetimes(name, v)),
        // MLServer passes strings through unchanged ("already encoded
        // upstream"); they are checked here so bad text fails now.
        (DATETIME, Decoded::Strings(v)) => {
            let column = bytes_column(
                name,
                v.into_iter().map(String::into_bytes).collect(),
                DATETIME,
            );
            decode_datetimes(&column)?;
            Ok(column)
        }
        (DATETIME, Decoded::Bytes(v) | Decoded::Raw(TensorData::Bytes(v))) => {
            let column = bytes_column(name, v, DATETIME);
            decode_datetimes(&column)?;
            Ok(column)
        }
        (_, value) => Err(unsupported(
            codec,
            &name,
            format!("cannot encode {} with it", value.describe()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Datatype, Parameters};

    fn with_ct(mut t: Tensor, ct: &str) -> Tensor {
        t.parameters
            .get_or_insert_with(Parameters::new)
            .set_content_type(ct);
        t
    }

    fn meta(name: &str, ct: &str) -> MetadataTensor {
        let mut m = MetadataTensor::new(name, Datatype::Bytes, vec![-1]);
        m.parameters = Some(content_type_parameters(ct));
        m
    }

    fn words() -> Tensor {
        Tensor::new("w", vec![2], vec!["aGk=", "x"]).unwrap()
    }

    #[test]
    fn input_parameters_win_over_metadata() {
        let m = meta("w", "base64");
        assert_eq!(input_content_type(&words(), Some(&m)), Some("base64"));
        let t = with_ct(words(), "str");
        assert_eq!(input_content_type(&t, Some(&m)), Some("str"));
        assert_eq!(
            decode_input(&t, Some(&m)).unwrap(),
            Decoded::Strings(vec!["aGk=".into(), "x".into()])
        );
        assert_eq!(
            decode_input(&words(), Some(&m)).unwrap(),
            Decoded::Bytes(vec![b"hi".to_vec(), b"x".to_vec()])
        );
    }

    #[test]
    fn no_or_unknown_content_type_is_raw() {
        let raw = Decoded::Raw(words().data);
        assert_eq!(decode_input(&words(), None).unwrap(), raw);
        for ct in ["pd", "pd_json", "nope"] {
            assert_eq!(decode_input(&with_ct(words(), ct), None).unwrap(), raw);
        }
    }

    #[test]
    fn np_decodes_numbers_and_bytes() {
        let x = with_ct(Tensor::new("x", vec![2], vec![1.0f32, 2.0]).unwrap(), "np");
        assert_eq!(
            decode_input(&x, None).unwrap(),
            Decoded::Numeric(TensorData::Fp32(vec![1.0, 2.0]))
        );
        let b = with_ct(words(), "np");
        assert!(matches!(decode_input(&b, None).unwrap(), Decoded::Bytes(_)));
    }

    #[test]
    fn known_codec_on_wrong_data_is_an_error() {
        let x = with_ct(Tensor::new("x", vec![1], vec![1i32]).unwrap(), "datetime");
        let e = decode_input(&x, None).unwrap_err().to_string();
        assert!(e.contains("codec 'datetime'") && e.contains("INT32"), "{e}");
    }

    #[test]
    fn decodes_all_inputs_with_metadata_by_name() {
        let request =
            InferenceRequest::new(vec![words(), Tensor::new("n", vec![1], vec![3u8]).unwrap()]);
        let decoded = decode_inputs(&request, &[meta("n", "np"), meta("w", "str")]).unwrap();
        assert_eq!(
            decoded[0],
            Decoded::Strings(vec!["aGk=".into(), "x".into()])
        );
        assert_eq!(decoded[1], Decoded::Numeric(TensorData::Uint8(vec![3])));
    }

    #[test]
    fn content_type_lookup_orders() {
        let mut request = InferenceRequest::new(vec![]);
        assert_eq!(request_content_type(&request, Some("np")), Some("np"));
        request.parameters_mut().set_content_type("str");
        assert_eq!(request_content_type(&request, Some("np")), Some("str"));

        let mut asked = RequestOutput::new("y");
        let m = meta("y", "base64");
        assert_eq!(output_content_type(Some(&asked), Some(&m)), Some("base64"));
        asked.parameters = Some(content_type_parameters("str"));
        assert_eq!(output_content_type(Some(&asked), Some(&m)), Some("str"));
        assert_eq!(output_content_type(None, None), None);
    }

    #[test]
    fn encode_by_payload_type() {
        let y = encode_output("y", Decoded::Numeric(TensorData::Int64(vec![1, 2])), None).unwrap();
        assert_eq!(
            (y.shape.as_slice(), y.content_type()),
            ([2, 1].as_slice(), Some("np"))
        );
        let s = encode_output("s", Decoded::Strings(vec!["a".into()]), Some("pd")).unwrap();
        assert_eq!(s.content_type(), Some("str"));
        let b = encode_output("b", Decoded::Bytes(vec![vec![0xff]]), None).unwrap();
        assert_eq!(b.content_type(), Some("base64"));
        assert_eq!(b.data, TensorData::Bytes(vec![b"/w==".to_vec()]));
        let r = encode_output("r", Decoded::Raw(TensorData::Bool(vec![true])), None).unwrap();
        assert_eq!((r.shape.as_slice(), r.parameters), ([1].as_slice(), None));
    }

    #[test]
    fn encode_with_requested_content_type() {
        let s = encode_output("s", Decoded::Strings(vec!["hi".into()]), Some("base64")).unwrap();
        assert_eq!(s.data, TensorData::Bytes(vec![b"aGk=".to_vec()]));
        let b = encode_output("b", Decoded::Bytes(vec![b"ok".to_vec()]), Some("str")).unwrap();
        assert_eq!(b.content_type(), Some("str"));
        assert!(encode_output("b", Decoded::Bytes(vec![vec![0xff]]), Some("str")).is_err());
        let d = encode_output(
            "d",
            Decoded::Strings(vec!["2021-08-24".into()]),
            Some("datetime"),
        )
        .unwrap();
        assert_eq!(d.data, TensorData::Bytes(vec![b"2021-08-24".to_vec()]));
        assert!(
            encode_output("d", Decoded::Strings(vec!["soon".into()]), Some("datetime")).is_err()
        );
        let raw = Decoded::Raw(TensorData::Fp32(vec![1.0]));
        assert_eq!(
            encode_output("x", raw.clone(), Some("np")).unwrap().shape,
            vec![1, 1]
        );
        let e = encode_output("x", raw, Some("str"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("codec 'str'") && e.contains("raw FP32 data"),
            "{e}"
        );
        let dt = Decoded::Datetimes(vec!["2021-08-24".parse().unwrap()]);
        assert!(encode_output("d", dt, Some("np")).is_err());
    }
}
