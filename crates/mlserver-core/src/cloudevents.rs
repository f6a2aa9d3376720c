//! MLServer's CloudEvents headers (its `CloudEventsMiddleware`, always on):
//! every inference request reaches the model with `Ce-*` entries in
//! `parameters.headers`, and every response carries them back to the client
//! as headers (REST) or trailing metadata (gRPC). Seldon's request logger
//! reads them.

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

    fn headers(&self, kind: Kind, model: &str, id: Option<&str>) -> Map<String, Value> {
        let ce_type = match kind {
            Kind::Request => "io.seldon.serving.inference.request",
            Kind::Response => "io.seldon.serving.inference.response",
        };
        let mut headers = Map::new();
        let mut put = |k: &str, v: &str| {
            headers.insert(k.to_owned(), Value::String(v.to_owned()));
        };
        put("Ce-Specversion", "0.3");
        put("Ce-Source", &self.source);
        put("Ce-Type", ce_type);
        put("Ce-Modelid", model);
        put("Ce-Inferenceservicename", &self.server_name);
        put("Ce-Endpoint", model);
        // MLServer skips an empty id (gRPC requests without one).
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            put("Ce-Id", id);
            put("Ce-Requestid", id);
        }
        if let Some(ns) = &self.namespace {
            put("Ce-Namespace", ns);
        }
        headers
    }

    /// Adds the request's headers for `model` (the model sees them).
    pub(crate) fn on_request(&self, request: &mut InferenceRequest, model: &str) {
        let headers = self.headers(Kind::Request, model, request.id.as_deref());
        update_headers(request.parameters_mut(), headers);
    }

    /// Adds the response's headers for `model` (the client gets them).
    pub(crate) fn on_response(&self, response: &mut InferenceResponse, model: &str) {
        let headers = self.headers(Kind::Response, model, response.id.as_deref());
        update_headers(response.parameters_mut(), headers);
    }
}

/// MLServer's `_update_headers`: merged into `headers`, replacing entries of
/// the same name.
fn update_headers(parameters: &mut Parameters, headers: Map<String, Value>) {
    match parameters.0.get_mut(Parameters::HEADERS) {
        Some(Value::Object(existing)) => existing.extend(headers),
        _ => {
            parameters.insert(Parameters::HEADERS, Value::Object(headers));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ce.on_response(&mut response, "iris");
        let headers = response
            .parameters
            .as_ref()
            .unwrap()
            .get(Parameters::HEADERS)
            .unwrap();
        assert_eq!(headers["Ce-Type"], "io.seldon.serving.inference.response");
        assert!(headers.get("Ce-Id").is_none(), "no id, no Ce-Id");
        assert_eq!(
            CloudEvents::with_namespace("s", None).source,
            "io.seldon.serving.deployment.s"
        );
    }
}
