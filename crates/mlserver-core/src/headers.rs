//! Request headers in, response headers out, the MLServer way: the runtime
//! sees every request header (HTTP headers or gRPC metadata) in
//! `parameters.headers`, and whatever it puts in the response's
//! `parameters.headers` goes back to the client (as headers or metadata).
//! Transports hand the pairs over; what a header is on the wire is theirs.

use mlserver_types::{InferenceRequest, InferenceResponse, Parameters};
use serde_json::{Map, Value};

/// MLServer copies every request header into `parameters.headers`,
/// replacing whatever the client put there. Repeated names are joined with
/// `, `, as HTTP folds them.
pub fn set_request_headers<'a>(
    request: &mut InferenceRequest,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let mut map = Map::new();
    for (name, value) in headers {
        map.entry(name.to_owned())
            .and_modify(|old| {
                if let Value::String(s) = old {
                    s.push_str(", ");
                    s.push_str(value);
                }
            })
            .or_insert_with(|| Value::String(value.to_owned()));
    }
    let params = request.parameters_mut();
    if params.get(Parameters::HEADERS).is_some() {
        tracing::debug!("request parameters.headers is replaced by the request's headers");
    }
    params.insert(Parameters::HEADERS, Value::Object(map));
}

/// The request's transport headers ([`InferenceRequest::headers`]) into
/// its `parameters.headers`, as [`set_request_headers`] puts them; nothing
/// when there are none (already there, or a request the server built).
pub fn materialize(request: &mut InferenceRequest) {
    if let Some(headers) = request.headers.take() {
        set_request_headers(request, headers.pairs());
    }
}

/// The response's `parameters.headers`, taken out of it (MLServer's
/// `extract_headers`: the parameters stay, empty or not). Values that are
/// not strings are sent as their JSON text.
pub fn take_response_headers(response: &mut InferenceResponse) -> Vec<(String, String)> {
    let Some(params) = response.parameters.as_mut() else {
        return Vec::new();
    };
    let Some(Value::Object(map)) = params.remove(Parameters::HEADERS) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, value)
        })
        .collect()
}

/// Moves the headers of `from` whose names `keep` accepts (given `into` as
/// it is so far) into `into`: a name's first value replaces what `into` had
/// under it, its repeats are appended (`HeaderMap`'s iterator gives a
/// repeat as `None`).
pub fn merge_headers(
    into: &mut http::HeaderMap,
    from: http::HeaderMap,
    keep: impl Fn(&http::HeaderMap, &http::HeaderName) -> bool,
) {
    let mut last: Option<http::HeaderName> = None;
    for (name, value) in from {
        match name {
            Some(name) => {
                if keep(into, &name) {
                    into.insert(name.clone(), value);
                    last = Some(name);
                } else {
                    last = None;
                }
            }
            None => {
                if let Some(name) = &last {
                    into.append(name.clone(), value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_reach_the_runtime_repeats_joined_and_come_back() {
        let mut request = InferenceRequest::default();
        set_request_headers(&mut request, [("x-a", "1"), ("x-a", "2"), ("x-b", "3")]);
        let seen = request.parameters.as_ref().unwrap().headers().unwrap();
        assert_eq!((&seen["x-a"], &seen["x-b"]), (&"1, 2".into(), &"3".into()));

        let mut response = InferenceResponse::default();
        response.parameters_mut().insert(
            Parameters::HEADERS,
            serde_json::json!({"x-n": 1, "x-s": "s"}),
        );
        let mut out = take_response_headers(&mut response);
        out.sort();
        assert_eq!(
            out,
            [("x-n".into(), "1".into()), ("x-s".into(), "s".into())]
        );
        assert_eq!(response.parameters, Some(Parameters::default()));
    }
}
