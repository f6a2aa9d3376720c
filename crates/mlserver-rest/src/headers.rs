//! HTTP headers to and from `parameters.headers` (see
//! `mlserver_core::headers`).

use http::{HeaderMap, HeaderName, HeaderValue};
use mlserver_types::{InferenceRequest, InferenceResponse, RequestHeaders};

/// Every HTTP request header, for `parameters.headers` as MLServer does
/// (the server puts them there for runtimes that read them).
pub(crate) fn headers_into_parameters(request: &mut InferenceRequest, headers: HeaderMap) {
    request.headers = Some(RequestHeaders::new(std::sync::Arc::new(headers)));
}

/// The HTTP response headers of `response`: its `parameters.headers`
/// (names or values HTTP cannot carry are dropped), then the server's own
/// ([`InferenceResponse::transport_headers`]), which win. Without headers
/// of the model's, the server's map is the response's as it is.
pub(crate) fn extract_headers(response: &mut InferenceResponse) -> HeaderMap {
    let server = std::mem::take(&mut response.transport_headers);
    let model = mlserver_core::headers::take_response_headers(response);
    if model.is_empty() {
        return server;
    }
    let mut out = HeaderMap::with_capacity(model.len() + server.len() + 3);
    for (k, v) in model {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            out.insert(k, v);
        }
    }
    mlserver_core::headers::merge_headers(&mut out, server, |_, _| true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_http_header_reaches_the_runtime_and_repeats_are_joined() {
        let mut map = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("x-a", "1"),
            ("x-a", "2"),
        ] {
            map.append(k, HeaderValue::from_static(v));
        }
        let mut request = InferenceRequest::default();
        headers_into_parameters(&mut request, map);
        mlserver_core::headers::materialize(&mut request);
        let seen = request.parameters.as_ref().unwrap().headers().unwrap();
        assert_eq!(seen["content-type"], "application/json");
        assert_eq!(seen["x-a"], "1, 2");
    }
}
