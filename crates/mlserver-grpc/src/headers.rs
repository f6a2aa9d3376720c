//! gRPC metadata to and from `parameters.headers` (see
//! `mlserver_core::headers`).

use std::sync::Arc;

use mlserver_types::{InferenceRequest, InferenceResponse, RequestHeaders};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

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

/// Response `parameters.headers` as metadata (what gRPC cannot carry is
/// dropped).
pub(crate) fn extract_metadata(response: &mut InferenceResponse) -> MetadataMap {
    let server = std::mem::take(&mut response.transport_headers);
    let mut out = MetadataMap::new();
    for (k, v) in mlserver_core::headers::take_response_headers(response) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
            MetadataValue::try_from(v.as_str()),
        ) {
            out.insert(k, v);
        }
    }
    // The server's own last, so they win (as MLServer's middleware).
    if server.is_empty() {
        return out;
    }
    let mut headers = out.into_headers();
    for (k, v) in server {
        headers.insert(k, v);
    }
    MetadataMap::from_headers(headers)
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
