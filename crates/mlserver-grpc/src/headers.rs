//! gRPC metadata to and from `parameters.headers` (see
//! `mlserver_core::headers`).

use std::sync::Arc;

use mlserver_types::{InferenceRequest, InferenceResponse, RequestHeaders};
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};

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

/// gRPC metadata, for `parameters.headers` as MLServer's gRPC servicer
/// passes the call's invocation metadata (the server puts it there for
/// runtimes that read headers).
pub(crate) fn insert_metadata(request: &mut InferenceRequest, metadata: &Arc<http::HeaderMap>) {
    request.headers = Some(RequestHeaders::without(
        metadata.clone(),
        &GRPC_TRANSPORT_HEADERS,
    ));
}

/// A response's trailing metadata, but gRPC's own: the model's
/// `parameters.headers` (what gRPC cannot carry, and `grpc-*` names, which
/// are the protocol's, are dropped), then the server's own, which win (as
/// MLServer's middleware). Without headers of the model's, the server's
/// map is the trailers' as it is.
pub(crate) fn extract_metadata(response: &mut InferenceResponse) -> http::HeaderMap {
    let server = std::mem::take(&mut response.transport_headers);
    let model = mlserver_core::headers::take_response_headers(response);
    if model.is_empty() {
        return server;
    }
    let mut out = http::HeaderMap::with_capacity(model.len() + server.len() + 2);
    for (k, v) in model {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::<Ascii>::from_bytes(k.to_ascii_lowercase().as_bytes()),
            MetadataValue::<Ascii>::try_from(v.as_str()),
        ) {
            // Checked as metadata, so valid as a header name and value.
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_str().as_bytes()),
                http::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                if !k.as_str().starts_with("grpc-") {
                    out.insert(k, v);
                }
            }
        }
    }
    mlserver_core::headers::merge_headers(&mut out, server, |_, _| true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_transport_headers_are_left_out_as_grpcio_does() {
        let mut map = http::HeaderMap::new();
        for (k, v) in [
            ("te", "trailers"),
            ("content-type", "application/grpc"),
            ("grpc-accept-encoding", "gzip"),
            ("grpc-timeout", "1S"),
            ("user-agent", "grpc-python/1.70"),
            ("x-client", "abc"),
        ] {
            map.append(k, http::HeaderValue::from_static(v));
        }
        let mut request = InferenceRequest::default();
        insert_metadata(&mut request, &Arc::new(map));
        mlserver_core::headers::materialize(&mut request);
        let seen = request.parameters.as_ref().unwrap().headers().unwrap();
        let keys: Vec<&str> = seen.keys().map(String::as_str).collect();
        assert_eq!(keys, ["user-agent", "x-client"]);
    }
}
