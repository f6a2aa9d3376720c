//! The OpenAPI 3.0 description of the REST API (`/v2/docs/dataplane.json`)
//! and the Swagger UI pages over it (`/v2/docs`), as MLServer serves them;
//! and per model (`/v2/models/{name}[/versions/{v}]/docs[/dataplane.json]`),
//! its own routes with the name filled in and, unlike MLServer's, the
//! model's declared inputs and outputs in the request and response schemas.
//!
//! Written here from the protocol (not MLServer's file), built once per
//! call: the documents are small and asked for rarely.

use mlserver_types::{MetadataModelResponse, MetadataTensor};
use serde_json::{json, Map, Value};

const MODEL_NAME: &str = "model_name";
const MODEL_VERSION: &str = "model_version";

/// What a route does, for its entry in the document.
struct Route {
    path: &'static str,
    method: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    response: Response,
}

/// A route's successful answer.
enum Response {
    /// 200 with an empty body (the health probes, load and unload).
    Empty,
    /// 200 with this schema (a `components/schemas` name).
    Json(&'static str),
    /// 200 with a JSON array of this schema.
    JsonArray(&'static str),
    /// Server-sent events, each holding this schema.
    Events(&'static str),
    /// An HTML page.
    Html,
    /// An OpenAPI document.
    Document,
}

const ROUTES: &[Route] = &[
    Route {
        path: "/v2/runtimes",
        method: "get",
        summary: "The runtime security mode and its allowlist (the ODH fork's)",
        request: None,
        response: Response::Json("RuntimeSecurityResponse"),
    },
    Route {
        path: "/v2/health/live",
        method: "get",
        summary: "Whether the server is live",
        request: None,
        response: Response::Empty,
    },
    Route {
        path: "/v2/health/ready",
        method: "get",
        summary: "Whether the server and its models are ready",
        request: None,
        response: Response::Empty,
    },
    Route {
        path: "/v2",
        method: "get",
        summary: "Server metadata",
        request: None,
        response: Response::Json("MetadataServerResponse"),
    },
    Route {
        path: "/v2/models/{model_name}",
        method: "get",
        summary: "Model metadata",
        request: None,
        response: Response::Json("MetadataModelResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}",
        method: "get",
        summary: "Model version metadata",
        request: None,
        response: Response::Json("MetadataModelResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/ready",
        method: "get",
        summary: "Whether the model is ready",
        request: None,
        response: Response::Empty,
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/ready",
        method: "get",
        summary: "Whether the model version is ready",
        request: None,
        response: Response::Empty,
    },
    Route {
        path: "/v2/models/{model_name}/infer",
        method: "post",
        summary: "Inference",
        request: Some("InferenceRequest"),
        response: Response::Json("InferenceResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/infer",
        method: "post",
        summary: "Inference on a model version",
        request: Some("InferenceRequest"),
        response: Response::Json("InferenceResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/generate",
        method: "post",
        summary: "Inference (the generate alias)",
        request: Some("InferenceRequest"),
        response: Response::Json("InferenceResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/generate",
        method: "post",
        summary: "Inference on a model version (the generate alias)",
        request: Some("InferenceRequest"),
        response: Response::Json("InferenceResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/infer_stream",
        method: "post",
        summary: "Streaming inference: responses as server-sent events",
        request: Some("InferenceRequest"),
        response: Response::Events("InferenceResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/infer_stream",
        method: "post",
        summary: "Streaming inference on a model version",
        request: Some("InferenceRequest"),
        response: Response::Events("InferenceResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/generate_stream",
        method: "post",
        summary: "Streaming inference (the generate alias)",
        request: Some("InferenceRequest"),
        response: Response::Events("InferenceResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/generate_stream",
        method: "post",
        summary: "Streaming inference on a model version (the generate alias)",
        request: Some("InferenceRequest"),
        response: Response::Events("InferenceResponse"),
    },
    Route {
        path: "/v2/repository/index",
        method: "post",
        summary: "Every model in the repository, with its state",
        request: Some("RepositoryIndexRequest"),
        response: Response::JsonArray("RepositoryIndexItem"),
    },
    Route {
        path: "/v2/repository/models/{model_name}/load",
        method: "post",
        summary: "Load (or reload) a model",
        request: None,
        response: Response::Empty,
    },
    Route {
        path: "/v2/repository/models/{model_name}/unload",
        method: "post",
        summary: "Unload a model",
        request: None,
        response: Response::Empty,
    },
    Route {
        path: "/v2/models/stats",
        method: "get",
        summary: "Statistics of every loaded model (Triton's statistics extension)",
        request: None,
        response: Response::Json("ModelStatisticsResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/stats",
        method: "get",
        summary: "Statistics of a model's loaded versions",
        request: None,
        response: Response::Json("ModelStatisticsResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/stats",
        method: "get",
        summary: "Statistics of a model version",
        request: None,
        response: Response::Json("ModelStatisticsResponse"),
    },
    Route {
        path: "/v2/models/{model_name}/config",
        method: "get",
        summary: "Model configuration (Triton's model configuration extension)",
        request: None,
        response: Response::Json("ModelConfig"),
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/config",
        method: "get",
        summary: "Model version configuration",
        request: None,
        response: Response::Json("ModelConfig"),
    },
    Route {
        path: "/v2/docs",
        method: "get",
        summary: "These docs, in Swagger UI",
        request: None,
        response: Response::Html,
    },
    Route {
        path: "/v2/docs/dataplane.json",
        method: "get",
        summary: "This document",
        request: None,
        response: Response::Document,
    },
    Route {
        path: "/v2/models/{model_name}/docs",
        method: "get",
        summary: "A model's docs, in Swagger UI",
        request: None,
        response: Response::Html,
    },
    Route {
        path: "/v2/models/{model_name}/docs/dataplane.json",
        method: "get",
        summary: "A model's OpenAPI document",
        request: None,
        response: Response::Document,
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/docs",
        method: "get",
        summary: "A model version's docs, in Swagger UI",
        request: None,
        response: Response::Html,
    },
    Route {
        path: "/v2/models/{model_name}/versions/{model_version}/docs/dataplane.json",
        method: "get",
        summary: "A model version's OpenAPI document",
        request: None,
        response: Response::Document,
    },
];

/// The server's document: every route.
pub(crate) fn server_document() -> Value {
    document(
        "Data Plane",
        "The Open Inference Protocol (KServe V2) over REST, as mlserver-rs serves it.",
        ROUTES.iter().map(|r| (r.path.to_owned(), r, true, true)),
        schemas(None),
    )
}

/// A model's document: the routes about a model, with its name (and
/// version) filled in, and its inputs and outputs in the schemas.
pub(crate) fn model_document(metadata: &MetadataModelResponse, version: Option<&str>) -> Value {
    let name = &metadata.name;
    let title = match version {
        Some(v) => format!("Model {name} ({v})"),
        None => format!("Model {name}"),
    };
    let routes = ROUTES.iter().filter_map(|r| {
        let has_version = r.path.contains("{model_version}");
        if !r.path.contains("{model_name}") || (version.is_some() && !has_version) {
            return None;
        }
        let mut path = r.path.replace("{model_name}", name);
        if let Some(v) = version {
            path = path.replace("{model_version}", v);
        }
        Some((path, r, false, version.is_none() && has_version))
    });
    document(
        &format!("Data Plane for {title}"),
        &format!("The REST protocol to interact with {title}."),
        routes,
        schemas(Some(metadata)),
    )
}

fn document<'a>(
    title: &str,
    description: &str,
    routes: impl Iterator<Item = (String, &'a Route, bool, bool)>,
    schemas: Value,
) -> Value {
    let mut paths = Map::new();
    for (path, route, name_param, version_param) in routes {
        let mut parameters = Vec::new();
        if name_param && path.contains("{model_name}") {
            parameters.push(path_parameter(MODEL_NAME));
        }
        if version_param && path.contains("{model_version}") {
            parameters.push(path_parameter(MODEL_VERSION));
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": operation_id(route.method, route.path),
            "parameters": parameters,
            "responses": responses(route),
        });
        if let Some(schema) = route.request {
            operation["requestBody"] = json!({
                "required": schema == "InferenceRequest",
                "content": {"application/json": {"schema": reference(schema)}},
            });
        }
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[route.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": "2.0",
            "description": description,
            "license": {"name": "Apache 2.0"},
        },
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn path_parameter(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

/// A stable, unique id: the method and the path's words.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_matches(|c| c == '{' || c == '}')
                .replace(['.', '-'], "_")
        })
        .collect();
    format!("{method}_{}", words.join("_"))
}

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

fn responses(route: &Route) -> Value {
    let ok = match route.response {
        Response::Empty => json!({"description": "OK"}),
        Response::Json(schema) => json!({
            "description": "OK",
            "content": {"application/json": {"schema": reference(schema)}},
        }),
        Response::JsonArray(schema) => json!({
            "description": "OK",
            "content": {"application/json": {"schema": {"type": "array", "items": reference(schema)}}},
        }),
        Response::Events(schema) => json!({
            "description": "One `data:` event per response",
            "content": {"text/event-stream": {"schema": reference(schema)}},
        }),
        Response::Html => {
            json!({"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}})
        }
        Response::Document => {
            json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}})
        }
    };
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": reference("ErrorResponse")}},
        })
    };
    let mut responses = json!({"200": ok});
    let is_model_route = route.path.contains("{model_name}");
    if route.request.is_some() {
        responses["400"] = error("The request is malformed or does not fit the model");
        responses["413"] = error("The request body is too large");
        responses["422"] = error("The request body does not fit the schema");
    }
    if is_model_route {
        responses["404"] = error("No such model (version)");
    }
    if route.path.ends_with("/ready") || route.path == "/v2/health/ready" {
        responses["400"] = json!({"description": "Not ready"});
    }
    if route.request == Some("InferenceRequest") {
        responses["500"] = error("The model failed");
        responses["503"] = error("The model is not ready or the server is shutting down");
        responses["504"] = error("The inference timed out");
    }
    responses
}

fn datatypes() -> Value {
    json!(mlserver_types::Datatype::ALL
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>())
}

/// The component schemas; with a model's metadata, inputs and outputs are
/// the declared ones (when it declares any).
fn schemas(model: Option<&MetadataModelResponse>) -> Value {
    let parameters = json!({
        "type": "object",
        "description": "Free-form parameters (`content_type`, `headers`, ...).",
        "additionalProperties": true,
    });
    let generic_input = json!({
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": datatypes()},
            "parameters": reference("Parameters"),
            "data": reference("TensorData"),
        },
    });
    let generic_output = json!({
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": datatypes()},
            "parameters": reference("Parameters"),
            "data": reference("TensorData"),
        },
    });
    let declared = |tensors: &[MetadataTensor], generic: &Value| -> Value {
        if tensors.is_empty() {
            return generic.clone();
        }
        let one_of: Vec<Value> = tensors
            .iter()
            .map(|t| {
                let mut schema = generic.clone();
                schema["description"] = json!(format!(
                    "{} {} {:?} (-1: any size)",
                    t.name,
                    t.datatype.as_str(),
                    t.shape
                ));
                schema["properties"]["name"] = json!({"type": "string", "enum": [t.name]});
                schema["properties"]["datatype"] =
                    json!({"type": "string", "enum": [t.datatype.as_str()]});
                schema["properties"]["shape"]["minItems"] = json!(t.shape.len());
                schema["properties"]["shape"]["maxItems"] = json!(t.shape.len());
                schema
            })
            .collect();
        json!({"oneOf": one_of})
    };
    let (input, output) = match model {
        Some(m) => (
            declared(&m.inputs, &generic_input),
            declared(&m.outputs, &generic_output),
        ),
        None => (generic_input.clone(), generic_output.clone()),
    };
    let tensor_metadata = json!({
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": datatypes()},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "parameters": reference("Parameters"),
        },
    });
    let duration = json!({
        "type": "object",
        "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}},
    });
    let config_tensor = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "data_type": {"type": "string"},
            "dims": {"type": "array", "items": {"type": "integer"}},
        },
    });
    json!({
        "Parameters": parameters,
        "TensorData": {
            "description": "The tensor's elements, flat or nested in row-major order (strings for BYTES, booleans for BOOL, numbers otherwise).",
            "type": "array",
            "items": {},
        },
        "RequestInput": input,
        "RequestOutput": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "parameters": reference("Parameters")},
        },
        "ResponseOutput": output,
        "InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": reference("Parameters"),
                "inputs": {"type": "array", "items": reference("RequestInput")},
                "outputs": {"type": "array", "items": reference("RequestOutput")},
            },
        },
        "InferenceResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string", "nullable": true},
                "id": {"type": "string"},
                "parameters": reference("Parameters"),
                "outputs": {"type": "array", "items": reference("ResponseOutput")},
            },
        },
        "MetadataServerResponse": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "RuntimeSecurityResponse": {
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"type": "string", "enum": ["PRODUCTION", "DEVELOPMENT"]},
                "allowed_model_implementations": {"type": "array", "items": {"type": "string"}},
            },
        },
        "MetadataTensor": tensor_metadata,
        "MetadataModelResponse": {
            "type": "object",
            "required": ["name", "platform"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": reference("MetadataTensor")},
                "outputs": {"type": "array", "items": reference("MetadataTensor")},
                "parameters": reference("Parameters"),
            },
        },
        "RepositoryIndexRequest": {
            "type": "object",
            "properties": {"ready": {"type": "boolean"}},
        },
        "RepositoryIndexItem": {
            "type": "object",
            "required": ["name", "state", "reason"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string", "nullable": true},
                "state": {"type": "string", "enum": ["UNKNOWN", "READY", "UNAVAILABLE", "LOADING", "UNLOADING"]},
                "reason": {"type": "string"},
            },
        },
        "ModelConfig": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "platform": {"type": "string"},
                "backend": {"type": "string"},
                "max_batch_size": {"type": "integer"},
                "input": {"type": "array", "items": config_tensor},
                "output": {"type": "array", "items": config_tensor},
                "model_transaction_policy": {
                    "type": "object",
                    "properties": {"decoupled": {"type": "boolean"}},
                },
            },
        },
        "StatisticDuration": duration,
        "ModelStatisticsResponse": {
            "type": "object",
            "properties": {
                "model_stats": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "last_inference": {"type": "integer"},
                            "inference_count": {"type": "integer"},
                            "execution_count": {"type": "integer"},
                            "inference_stats": {
                                "type": "object",
                                "additionalProperties": reference("StatisticDuration"),
                            },
                            "batch_stats": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
        "ErrorResponse": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
    })
}

/// A Swagger UI page over the document at `openapi_url` (its scripts come
/// from a CDN, as FastAPI's page, which MLServer serves, loads them).
pub(crate) fn swagger_ui(title: &str, openapi_url: &str) -> String {
    let title = html_escape(title);
    let url = serde_json::to_string(openapi_url).expect("a string serializes");
    format!(
        r##"<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: {url}, dom_id: "#swagger-ui", deepLinking: true}});
</script>
</body>
</html>
"##
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlserver_types::Datatype;

    #[test]
    fn every_rest_route_is_documented() {
        let doc = server_document();
        let paths = doc["paths"].as_object().unwrap();
        for route in crate::V2_PATHS {
            let templated = route
                .replace("{name}", "{model_name}")
                .replace("{version}", "{model_version}");
            assert!(
                paths.contains_key(&templated),
                "{route} is not in the document"
            );
        }
    }

    #[test]
    fn a_models_document_has_its_routes_and_tensors() {
        let metadata = MetadataModelResponse {
            name: "iris".into(),
            inputs: vec![MetadataTensor {
                name: "x".into(),
                datatype: Datatype::Fp32,
                shape: vec![-1, 4],
                parameters: None,
            }],
            ..Default::default()
        };
        let doc = model_document(&metadata, None);
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/v2/models/iris/infer"));
        assert!(paths.contains_key("/v2/models/iris/versions/{model_version}/infer"));
        assert!(!paths.contains_key("/v2/health/live"));
        assert!(paths["/v2/models/iris/infer"]["post"]["parameters"]
            .as_array()
            .unwrap()
            .is_empty());
        let input = &doc["components"]["schemas"]["RequestInput"]["oneOf"][0];
        assert_eq!(input["properties"]["name"]["enum"], json!(["x"]));
        assert_eq!(input["properties"]["datatype"]["enum"], json!(["FP32"]));
        let versioned = model_document(&metadata, Some("2"));
        let paths = versioned["paths"].as_object().unwrap();
        assert!(paths.contains_key("/v2/models/iris/versions/2/infer"));
        assert!(!paths.contains_key("/v2/models/iris/infer"));
    }

    #[test]
    fn the_page_points_at_the_document() {
        let page = swagger_ui("Docs <x>", "/v2/docs/dataplane.json");
        assert!(page.contains("url: \"/v2/docs/dataplane.json\""));
        assert!(page.contains("<title>Docs &lt;x&gt;</title>"));
    }
}
