//! The request side both runtimes share: which requests MLServer decodes
//! as one numpy array (`decode_request(payload, default_codec=
//! NumpyRequestCodec)`), and that array as rows of features.

use std::path::Path;

use mlserver_runtime::{MLServerError, ModelContext, ModelSettings, Native};
use mlserver_types::codecs::{
    find_metadata, input_content_type, output_content_type, request_content_type,
};
use mlserver_types::{InferenceRequest, RequestOutput, Tensor, TensorData};

/// Finds the model file as MLServer's runtime does (`wellknown` names in a
/// folder) and reads it with `read` off the async threads; a remote URI is
/// left to the Python runtime, which fetches it.
pub(crate) async fn load_local<M: Send + 'static>(
    ctx: ModelContext,
    wellknown: &[&str],
    read: fn(ModelContext, &Path) -> Result<Native<M>, MLServerError>,
) -> Result<Native<M>, MLServerError> {
    let uri = ctx.model_uri(wellknown)?;
    let Some(path) = uri.as_local().map(Path::to_path_buf) else {
        return Ok(Native::Declines("the model URI is not a local file".into()));
    };
    mlserver_runtime::blocking(move || read(ctx, &path)).await
}

/// MLServer's request codecs other than numpy's: a request (or a model
/// default) naming one is decoded into something else than an array.
const OTHER_REQUEST_CODECS: [&str; 2] = ["pd", "str"];
/// MLServer's input codecs other than numpy's, likewise for one input or
/// output. Unknown content types are ignored by MLServer (numpy decodes).
const OTHER_INPUT_CODECS: [&str; 3] = ["str", "base64", "datetime"];

/// Why MLServer would not hand this request to the library as one numeric
/// numpy array, or `None` when it would. Those requests are answered by
/// the Python runtime, which decodes them as MLServer does.
pub(crate) fn declines(request: &InferenceRequest, settings: &ModelSettings) -> Option<String> {
    let model_default = settings
        .parameters
        .as_ref()
        .and_then(|p| p.content_type.as_deref());
    if let Some(ct) = request_content_type(request, model_default) {
        if OTHER_REQUEST_CODECS.contains(&ct) {
            return Some(format!("the request's content type is '{ct}'"));
        }
    }
    for input in &request.inputs {
        let declared = find_metadata(&settings.inputs, &input.name);
        if let Some(ct) = input_content_type(input, declared) {
            if OTHER_INPUT_CODECS.contains(&ct) {
                return Some(format!("input '{}' has content type '{ct}'", input.name));
            }
        }
    }
    if let [input] = request.inputs.as_slice() {
        if matches!(input.data, TensorData::Bytes(_) | TensorData::Bf16(_)) {
            return Some(format!(
                "input '{}' is {}, not a number",
                input.name, input.datatype
            ));
        }
    }
    None
}

/// Whether MLServer would encode the requested output `name` with numpy's
/// codec (the one both runtimes default to).
pub(crate) fn output_declines(
    requested: Option<&RequestOutput>,
    name: &str,
    settings: &ModelSettings,
) -> Option<String> {
    let declared = find_metadata(&settings.outputs, name);
    match output_content_type(requested, declared) {
        Some(ct) if OTHER_INPUT_CODECS.contains(&ct) => Some(format!(
            "output '{name}' is asked for with content type '{ct}'"
        )),
        _ => None,
    }
}

/// How MLServer's workers (`parallel_workers` >= 1, its default, and how
/// this server always runs Python models) report its errors: the
/// exception's import path first.
pub(crate) const INFERENCE_ERROR: &str = "mlserver.errors.InferenceError: ";
const CODEC_ERROR: &str = "mlserver.codecs.errors.CodecError: ";

/// The single input numpy's request codec decodes, or its error.
pub(crate) fn single_input(request: &InferenceRequest) -> Result<&Tensor, MLServerError> {
    match request.inputs.as_slice() {
        [input] => Ok(input),
        inputs => Err(MLServerError::bad_request(format!(
            "{CODEC_ERROR}There was an error encoding / decoding the payload: The 'np' codec only supports a single input tensor ({} were received)",
            inputs.len()
        ))),
    }
}

/// Every element as float32, as numpy's `astype(np.float32)` (and
/// XGBoost's C++ cast) converts it: correctly rounded; `true` is 1.
/// `None` for datatypes without a numeric value (declined earlier).
pub(crate) fn to_f32(data: &TensorData) -> Option<Vec<f32>> {
    fn map<T: Copy>(v: &[T], f: impl Fn(T) -> f32) -> Option<Vec<f32>> {
        Some(v.iter().map(|&x| f(x)).collect())
    }
    match data {
        TensorData::Fp32(v) => Some(v.clone()),
        TensorData::Fp64(v) => map(v, |x| x as f32),
        TensorData::Fp16(v) => map(v, |x| x.to_f32()),
        TensorData::Bool(v) => map(v, |x| f32::from(u8::from(x))),
        TensorData::Uint8(v) => map(v, f32::from),
        TensorData::Uint16(v) => map(v, f32::from),
        TensorData::Uint32(v) => map(v, |x| x as f32),
        TensorData::Uint64(v) => map(v, |x| x as f32),
        TensorData::Int8(v) => map(v, f32::from),
        TensorData::Int16(v) => map(v, f32::from),
        TensorData::Int32(v) => map(v, |x| x as f32),
        TensorData::Int64(v) => map(v, |x| x as f32),
        TensorData::Bf16(_) | TensorData::Bytes(_) => None,
    }
}

/// MLServer's NumPy output: `[n]` becomes `[n, 1]`, `content_type` `np`.
/// `cols` is `None` for a one-dimensional result.
pub(crate) fn numpy_output(
    name: &str,
    rows: usize,
    cols: Option<usize>,
    data: TensorData,
) -> Result<Tensor, MLServerError> {
    let shape = vec![rows, cols.unwrap_or(1)];
    let mut params = mlserver_types::Parameters::new();
    params.set_content_type("np");
    Ok(Tensor::new(name, shape, data)?.with_parameters(params))
}
