//! Custom REST endpoints a runtime serves beside the V2 API (MLServer's
//! `@custom_handler(rest_path=..., rest_method=...)`; MLflow's
//! `/invocations` and `/ping`). A runtime lists them in
//! [`MLModel::custom_routes`](crate::MLModel::custom_routes) when loaded;
//! the server serves them while the model is loaded and refuses, at load,
//! one that clashes with the V2 API or another model's.

use bytes::Bytes;

/// A method and a path template: segments in braces (`/items/{id}`) match
/// any one segment, and reach the handler by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomRoute {
    /// `GET`, `POST`, ... (upper case).
    pub method: String,
    /// The path template (`/invocations`, `/items/{id}`).
    pub path: String,
}

impl CustomRoute {
    /// A route for `method` (any case) at the template `path`.
    pub fn new(method: &str, path: &str) -> Self {
        CustomRoute {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
        }
    }

    /// The template's `{name}` segments bound to `path`'s, if it matches.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let template: Vec<&str> = self.path.trim_end_matches('/').split('/').collect();
        let given: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        if template.len() != given.len() {
            return None;
        }
        let mut params = Vec::new();
        for (t, g) in template.iter().zip(&given) {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !g.is_empty() => params.push((name.to_owned(), (*g).to_owned())),
                Some(_) => return None,
                None if t == g => {}
                None => return None,
            }
        }
        Some(params)
    }
}

/// One call of a custom endpoint, as the client sent it.
#[derive(Debug, Clone)]
pub struct CustomRequest {
    /// The route it matched.
    pub route: CustomRoute,
    /// The path as requested, and its `{name}` segments.
    pub path: String,
    /// The path's `{name}` segments, by name.
    pub path_params: Vec<(String, String)>,
    /// The query string, without `?`.
    pub query: String,
    /// The request headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The request body, as sent (decompressed).
    pub body: Bytes,
}

/// A custom endpoint's answer.
#[derive(Debug, Clone)]
pub struct CustomResponse {
    /// The HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Bytes,
}

impl CustomResponse {
    /// A 200 with a JSON body.
    pub fn json(value: &serde_json::Value) -> Self {
        CustomResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(value.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_bind_their_segments() {
        let r = CustomRoute::new("post", "/items/{id}/score");
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.matches("/items/7/score"),
            Some(vec![("id".to_owned(), "7".to_owned())])
        );
        assert_eq!(r.matches("/items//score"), None);
        assert_eq!(r.matches("/items/7"), None);
        assert_eq!(
            CustomRoute::new("GET", "/ping").matches("/ping/"),
            Some(vec![])
        );
    }
}
