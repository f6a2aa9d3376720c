//! Request headers in, response headers out, the MLServer way: the runtime
//! sees every request header (HTTP headers or gRPC metadata) in
//! `parameters.headers`, and whatever it puts in the response's
//! `parameters.headers` goes back to the client as headers (metadata).

use http::{HeaderMap, HeaderName, HeaderValue};
use mlserver_types::{InferenceRequest, InferenceResponse, Parameters};
use serde_json::{Map, Value};

/// MLServer copies every request header into `parameters.headers`,
/// replacing whatever the client put there.
pub(crate) fn insert_headers(request: &mut InferenceRequest, headers: &HeaderMap) {
    let mut map = Map::new();
    for (name, value) in headers {
        if let Ok(v) = value.to_str() {
            map.entry(name.as_str().to_owned())
                .and_modify(|old| {
                    if let Value::String(s) = old {
                        s.push_str(", ");
                        s.push_str(v);
                    }
                })
                .or_insert_with(|| Value::String(v.to_owned()));
        }
    }
    let params = request.parameters_mut();
    if params.get(Parameters::HEADERS).is_some() {
        tracing::warn!("request parameters.headers is replaced by the HTTP request headers");
    }
    params.insert(Parameters::HEADERS, Value::Object(map));
}

/// Response `parameters.headers` become HTTP response headers.
pub(crate) fn extract_headers(response: &mut InferenceResponse) -> Vec<(HeaderName, HeaderValue)> {
    let Some(params) = response.parameters.as_mut() else {
        return Vec::new();
    };
    let Some(Value::Object(map)) = params.remove(Parameters::HEADERS) else {
        return Vec::new();
    };
    if params.is_empty() {
        response.parameters = None;
    }
    map.into_iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            Some((
                HeaderName::try_from(k).ok()?,
                HeaderValue::try_from(value).ok()?,
            ))
        })
        .collect()
}
