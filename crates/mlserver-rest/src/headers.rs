//! HTTP headers to and from `parameters.headers` (see
//! `mlserver_core::headers`).

use http::{HeaderMap, HeaderName, HeaderValue};
use mlserver_types::{InferenceRequest, InferenceResponse, RequestHeaders};

/// Every HTTP request header, for `parameters.headers` as MLServer does
/// (the server puts them there for runtimes that read them).
pub(crate) fn insert_headers(request: &mut InferenceRequest, headers: HeaderMap) {
    request.headers = Some(RequestHeaders::new(std::sync::Arc::new(headers)));
}

/// Response `parameters.headers` become HTTP response headers (names or
/// values HTTP cannot carry are dropped), then the server's own
/// ([`InferenceResponse::transport_headers`]), which come last so they win.
pub(crate) fn extract_headers(response: &mut InferenceResponse) -> Vec<(HeaderName, HeaderValue)> {
    let server = std::mem::take(&mut response.transport_headers);
    mlserver_core::headers::take_response_headers(response)
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::try_from(k).ok()?,
                HeaderValue::try_from(v).ok()?,
            ))
        })
        .chain(server)
        .collect()
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
        insert_headers(&mut request, map);
        mlserver_core::headers::materialize(&mut request);
        let seen = request.parameters.as_ref().unwrap().headers().unwrap();
        assert_eq!(seen["content-type"], "application/json");
        assert_eq!(seen["x-a"], "1, 2");
    }
}
