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
    insert_some_headers(request, headers, |_| true);
}

/// gRPC's transport headers: grpcio keeps them out of
/// `invocation_metadata()`, so they never reach MLServer's
/// `parameters.headers`.
const GRPC_TRANSPORT_HEADERS: [&str; 5] = [
    "te",
    "content-type",
    "grpc-accept-encoding",
    "grpc-encoding",
    "grpc-timeout",
];

/// gRPC metadata into `parameters.headers`, as MLServer's gRPC servicer
/// passes the call's invocation metadata.
pub(crate) fn insert_metadata(request: &mut InferenceRequest, metadata: &HeaderMap) {
    insert_some_headers(request, metadata, |name| {
        !GRPC_TRANSPORT_HEADERS.contains(&name)
    });
}

fn insert_some_headers(
    request: &mut InferenceRequest,
    headers: &HeaderMap,
    keep: impl Fn(&str) -> bool,
) {
    let mut map = Map::new();
    for (name, value) in headers {
        if !keep(name.as_str()) {
            continue;
        }
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
    // As MLServer's `extract_headers`: the parameters stay, empty or not
    // (its REST answers say `"parameters": {}`).
    let Some(Value::Object(map)) = params.remove(Parameters::HEADERS) else {
        return Vec::new();
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn seen(request: &InferenceRequest) -> &Map<String, Value> {
        request
            .parameters
            .as_ref()
            .unwrap()
            .get(Parameters::HEADERS)
            .unwrap()
            .as_object()
            .unwrap()
    }

    #[test]
    fn every_http_header_reaches_the_runtime_and_repeats_are_joined() {
        let mut request = InferenceRequest::default();
        insert_headers(
            &mut request,
            &headers(&[
                ("content-type", "application/json"),
                ("x-a", "1"),
                ("x-a", "2"),
            ]),
        );
        let seen = seen(&request);
        assert_eq!(seen["content-type"], "application/json");
        assert_eq!(seen["x-a"], "1, 2");
    }

    #[test]
    fn grpc_transport_headers_are_left_out_as_grpcio_does() {
        let mut request = InferenceRequest::default();
        insert_metadata(
            &mut request,
            &headers(&[
                ("te", "trailers"),
                ("content-type", "application/grpc"),
                ("grpc-accept-encoding", "gzip"),
                ("grpc-timeout", "1S"),
                ("user-agent", "grpc-python/1.70"),
                ("x-client", "abc"),
            ]),
        );
        let seen = seen(&request);
        let keys: Vec<&str> = seen.keys().map(String::as_str).collect();
        assert_eq!(keys, ["user-agent", "x-client"]);
    }
}
