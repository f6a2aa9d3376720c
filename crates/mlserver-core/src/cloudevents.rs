//! MLServer's CloudEvents headers (its `CloudEventsMiddleware`, always on):
//! every inference request reaches the model with `Ce-*` entries in
//! `parameters.headers`, and every response carries them back to the client
//! as headers (REST) or trailing metadata (gRPC). Seldon's request logger
//! reads them.

use http::{HeaderMap, HeaderName, HeaderValue};
use mlserver_types::{InferenceRequest, InferenceResponse, Parameters};
use serde_json::{Map, Value};

/// Where a Kubernetes pod finds its namespace.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The server-wide parts of the headers, worked out once.
#[derive(Debug, Clone)]
pub struct CloudEvents {
    /// `io.seldon.serving.deployment.<server_name>[.<namespace>]`.
    source: String,
    server_name: String,
    namespace: Option<String>,
}

enum Kind {
    Request,
    Response,
}

impl CloudEvents {
    /// For a server named `server_name`, in the pod's namespace if there is
    /// one (read as MLServer reads it, once).
    pub fn new(server_name: &str) -> Self {
        let namespace = std::fs::read_to_string(NAMESPACE_FILE).ok();
        Self::with_namespace(server_name, namespace)
    }

    fn with_namespace(server_name: &str, namespace: Option<String>) -> Self {
        let mut source = format!("io.seldon.serving.deployment.{server_name}");
        if let Some(ns) = &namespace {
            source.push('.');
            source.push_str(ns);
        }
        CloudEvents {
            source,
            server_name: server_name.to_owned(),
            namespace,
        }
    }

    /// The headers as (name, value) pairs, names as MLServer writes them.
    fn pairs(&self, kind: Kind, model: &str, id: Option<&str>) -> Vec<(&'static str, String)> {
        let ce_type = match kind {
            Kind::Request => "io.seldon.serving.inference.request",
            Kind::Response => "io.seldon.serving.inference.response",
        };
        let mut pairs = Vec::with_capacity(9);
        pairs.push(("Ce-Specversion", "0.3".to_owned()));
        pairs.push(("Ce-Source", self.source.clone()));
        pairs.push(("Ce-Type", ce_type.to_owned()));
        pairs.push(("Ce-Modelid", model.to_owned()));
        pairs.push(("Ce-Inferenceservicename", self.server_name.clone()));
        pairs.push(("Ce-Endpoint", model.to_owned()));
        // MLServer skips an empty id (gRPC requests without one).
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            pairs.push(("Ce-Id", id.to_owned()));
            pairs.push(("Ce-Requestid", id.to_owned()));
        }
        if let Some(ns) = &self.namespace {
            pairs.push(("Ce-Namespace", ns.clone()));
        }
        pairs
    }

    /// Adds the request's headers for `model` (the model sees them, in
    /// `parameters.headers`).
    pub(crate) fn on_request(&self, request: &mut InferenceRequest, model: &str) {
        let pairs = self.pairs(Kind::Request, model, request.id.as_deref());
        // Straight into the request's headers (MLServer's `_update_headers`:
        // same names replaced), without a map of their own to merge.
        let parameters = request.parameters_mut();
        if !matches!(
            parameters.0.get(Parameters::HEADERS),
            Some(Value::Object(_))
        ) {
            parameters.insert(Parameters::HEADERS, Value::Object(Map::new()));
        }
        if let Some(Value::Object(headers)) = parameters.0.get_mut(Parameters::HEADERS) {
            for (k, v) in pairs {
                headers.insert(k.to_owned(), Value::String(v));
            }
        }
    }

    /// The response headers for `model`, built once (at load): only the
    /// request id differs from one response to the next.
    pub(crate) fn response_headers(&self, model: &str) -> ResponseHeaders {
        // Room for a transport's own few (content type and length), so a
        // response's copy never grows.
        let mut with_id = HeaderMap::with_capacity(16);
        let mut without_id = HeaderMap::with_capacity(16);
        let mut id_at = 0;
        for (name, value) in self.pairs(Kind::Response, model, Some(" ")) {
            // A value HTTP cannot carry (a server name with a newline) is
            // left out, as the transports always dropped it.
            let Ok(value) = HeaderValue::try_from(value) else {
                continue;
            };
            let name = HeaderName::from_static(lower_case(name));
            if name == "ce-id" {
                // Where the id's two go: their values are the response's.
                id_at = with_id.len();
            } else if name != "ce-requestid" {
                without_id.insert(name.clone(), value.clone());
            }
            with_id.insert(name, value);
        }
        ResponseHeaders {
            with_id,
            id_at,
            without_id,
        }
    }
}

/// A model's CloudEvents response headers, ready for the transports: maps
/// cloned per response, hashed once here, rather than a map filled per
/// response (MLServer's eight headers hashed in one by one cost more than
/// the model's `predict` here).
#[derive(Debug, Clone)]
pub(crate) struct ResponseHeaders {
    /// Every header, `ce-id` and `ce-requestid` (with a placeholder value)
    /// at `id_at` and after it, in MLServer's order.
    with_id: HeaderMap,
    id_at: usize,
    /// Those of a response without an id (MLServer sends no `ce-id` then).
    without_id: HeaderMap,
}

impl ResponseHeaders {
    /// Sets them on `response` ([`InferenceResponse::transport_headers`],
    /// lower-case as HTTP/2 and gRPC metadata need, not through a JSON map
    /// in `parameters`), its id as `ce-id` and `ce-requestid`.
    pub(crate) fn apply(&self, response: &mut InferenceResponse) {
        // MLServer's response keeps the `parameters` its headers were taken
        // out of: `"parameters": {}` in a REST body.
        response.parameters.get_or_insert_with(Default::default);
        // MLServer skips an empty id (gRPC requests without one), and HTTP
        // cannot carry some.
        let id = response
            .id
            .as_deref()
            .filter(|id| !id.is_empty())
            .and_then(|id| HeaderValue::try_from(id).ok());
        response.transport_headers = match id {
            Some(id) => {
                let mut headers = self.with_id.clone();
                // The map's entries in order: the id's two, placed at load,
                // are set without hashing their names again.
                for (_, value) in headers.iter_mut().skip(self.id_at).take(2) {
                    *value = id.clone();
                }
                headers
            }
            None => self.without_id.clone(),
        };
    }
}

/// The lower-case form of a CloudEvents header name.
fn lower_case(name: &'static str) -> &'static str {
    match name {
        "Ce-Specversion" => "ce-specversion",
        "Ce-Source" => "ce-source",
        "Ce-Type" => "ce-type",
        "Ce-Modelid" => "ce-modelid",
        "Ce-Inferenceservicename" => "ce-inferenceservicename",
        "Ce-Endpoint" => "ce-endpoint",
        "Ce-Id" => "ce-id",
        "Ce-Requestid" => "ce-requestid",
        "Ce-Namespace" => "ce-namespace",
        other => unreachable!("not a CloudEvents header: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_name_ok(name: &str) -> bool {
        name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    }

    #[test]
    fn requests_and_responses_get_mlservers_headers() {
        let ce = CloudEvents::with_namespace("mlserver", Some("models".into()));
        let mut request = InferenceRequest {
            id: Some("abc".into()),
            ..Default::default()
        };
        request
            .parameters_mut()
            .insert(Parameters::HEADERS, serde_json::json!({"x-client": "1"}));
        ce.on_request(&mut request, "iris");
        let headers = request
            .parameters
            .as_ref()
            .unwrap()
            .get(Parameters::HEADERS)
            .unwrap();
        assert_eq!(headers["x-client"], "1", "kept");
        assert_eq!(headers["Ce-Type"], "io.seldon.serving.inference.request");
        assert_eq!(
            headers["Ce-Source"],
            "io.seldon.serving.deployment.mlserver.models"
        );
        assert_eq!(
            (&headers["Ce-Id"], &headers["Ce-Requestid"]),
            (&"abc".into(), &"abc".into())
        );
        assert_eq!(
            (&headers["Ce-Modelid"], &headers["Ce-Endpoint"]),
            (&"iris".into(), &"iris".into())
        );
        assert_eq!(headers["Ce-Namespace"], "models");

        let mut response = InferenceResponse::default();
        ce.response_headers("iris").apply(&mut response);
        let parameters = response.parameters.as_ref().expect("kept, as MLServer");
        assert!(
            parameters.get(Parameters::HEADERS).is_none(),
            "not in the body"
        );
        let headers: std::collections::HashMap<&str, &str> = response
            .transport_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(headers["ce-type"], "io.seldon.serving.inference.response");
        assert_eq!(headers["ce-modelid"], "iris");
        assert_eq!(headers["ce-namespace"], "models");
        assert!(!headers.contains_key("ce-id"), "no id, no Ce-Id");
        assert!(!headers.contains_key("ce-requestid"), "nor Ce-Requestid");
        for (name, _) in &response.transport_headers {
            assert!(http_name_ok(name.as_str()), "{name}");
        }
        // With an id: ce-id and ce-requestid, before the namespace (last).
        let mut response = InferenceResponse {
            id: Some("r-1".into()),
            ..Default::default()
        };
        ce.response_headers("iris").apply(&mut response);
        let names: Vec<&str> = response
            .transport_headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            names[names.len() - 3..],
            ["ce-id", "ce-requestid", "ce-namespace"]
        );
        assert_eq!(response.transport_headers["ce-id"], "r-1");
        assert_eq!(response.transport_headers["ce-requestid"], "r-1");
        assert_eq!(response.transport_headers["ce-namespace"], "models");
        assert_eq!(response.transport_headers.len(), names.len());
        assert_eq!(
            CloudEvents::with_namespace("s", None).source,
            "io.seldon.serving.deployment.s"
        );
    }
}
