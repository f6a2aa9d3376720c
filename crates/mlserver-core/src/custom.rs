//! The custom endpoints of the loaded models (`MLModel::custom_routes`),
//! claimed at load and released at unload, kept off the routes the
//! transports reserve (the REST adapter's V2 API, given as data).

use crate::ServingError;
use std::sync::RwLock;

use mlserver_runtime::CustomRoute;

/// Whether two templates can match one path (a `{param}` matches any
/// segment).
fn overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (
        a.trim_end_matches('/').split('/').collect(),
        b.trim_end_matches('/').split('/').collect(),
    );
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x == y || x.starts_with('{') || y.starts_with('{'))
}

struct Claim {
    route: CustomRoute,
    model: String,
    version: Option<String>,
}

/// The model that serves a custom endpoint's call, and how it matched.
#[derive(Debug, Clone)]
pub struct CustomTarget {
    /// The route that matched.
    pub route: CustomRoute,
    /// The model that claimed it.
    pub model: String,
    /// The version that claimed it (`None`: unversioned).
    pub version: Option<String>,
    /// The template's `{name}` segments, bound.
    pub path_params: Vec<(String, String)>,
}

/// Which model serves which custom route.
#[derive(Default)]
pub struct CustomRoutes {
    claims: RwLock<Vec<Claim>>,
    /// Route templates no model may take.
    reserved: &'static [&'static str],
}

impl CustomRoutes {
    /// No custom routes yet, and none allowed over `reserved` (templates,
    /// `{param}` matching any segment).
    pub(crate) fn reserving(reserved: &'static [&'static str]) -> Self {
        CustomRoutes {
            claims: RwLock::default(),
            reserved,
        }
    }

    /// Gives `routes` to `model`/`version`, replacing what it had (a
    /// reload). Refused, changing nothing, when one overlaps a V2 route or
    /// another model's.
    pub(crate) fn claim(
        &self,
        model: &str,
        version: Option<&str>,
        routes: Vec<CustomRoute>,
    ) -> Result<(), ServingError> {
        let mut claims = self.claims.write().expect("custom routes lock");
        // The V2 API's routes first: the clash that can never be resolved.
        for route in &routes {
            if !route.path.starts_with('/') {
                return Err(ServingError::bad_request(format!(
                    "model {model}: custom route {} {} must start with '/'",
                    route.method, route.path
                )));
            }
            if let Some(v2) = self.reserved.iter().find(|v2| overlap(v2, &route.path)) {
                return Err(ServingError::bad_request(format!(
                    "model {model}: custom route {} {} clashes with the V2 API's {v2}",
                    route.method, route.path
                )));
            }
        }
        for route in &routes {
            let taken = claims.iter().find(|c| {
                !(c.model == model && c.version.as_deref() == version)
                    && c.route.method == route.method
                    && overlap(&c.route.path, &route.path)
            });
            if let Some(other) = taken {
                return Err(ServingError::bad_request(format!(
                    "model {model}: custom route {} {} is already served by model {}",
                    route.method, route.path, other.model
                )));
            }
        }
        claims.retain(|c| !(c.model == model && c.version.as_deref() == version));
        claims.extend(routes.into_iter().map(|route| Claim {
            route,
            model: model.to_owned(),
            version: version.map(str::to_owned),
        }));
        Ok(())
    }

    /// Drops `model`/`version`'s routes (an unload).
    pub fn release(&self, model: &str, version: Option<&str>) {
        self.claims
            .write()
            .expect("custom routes lock")
            .retain(|c| !(c.model == model && c.version.as_deref() == version));
    }

    /// Who serves a call, if a model does.
    pub fn find(&self, method: &str, path: &str) -> Option<CustomTarget> {
        let claims = self.claims.read().expect("custom routes lock");
        claims.iter().find_map(|c| {
            if c.route.method != method {
                return None;
            }
            let path_params = c.route.matches(path)?;
            Some(CustomTarget {
                route: c.route.clone(),
                model: c.model.clone(),
                version: c.version.clone(),
                path_params,
            })
        })
    }

    /// Whether any model serves `path` (with another method).
    pub fn serves_path(&self, path: &str) -> bool {
        let claims = self.claims.read().expect("custom routes lock");
        claims.iter().any(|c| c.route.matches(path).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_claimed_once_and_never_over_the_v2_api() {
        let routes = CustomRoutes::reserving(&["/v2/models/{name}", "/v2/models/{name}/infer"]);
        let r = |m: &str, p: &str| CustomRoute::new(m, p);
        routes
            .claim(
                "mlflow",
                None,
                vec![r("POST", "/invocations"), r("GET", "/ping")],
            )
            .unwrap();
        // Another model may not take them; the same model may (a reload).
        let e = routes
            .claim("other", None, vec![r("POST", "/invocations")])
            .unwrap_err();
        assert!(
            e.to_string().contains("already served by model mlflow"),
            "{e}"
        );
        routes
            .claim("other", None, vec![r("GET", "/invocations")])
            .unwrap();
        routes
            .claim("mlflow", None, vec![r("POST", "/invocations")])
            .unwrap();
        assert!(
            routes.find("GET", "/ping").is_none(),
            "the reload dropped it"
        );
        let e = routes
            .claim("x", None, vec![r("POST", "/v2/models/{m}/infer")])
            .unwrap_err();
        assert!(e.to_string().contains("clashes with the V2 API"), "{e}");
        let e = routes
            .claim("x", None, vec![r("GET", "/v2/models/iris")])
            .unwrap_err();
        assert!(e.to_string().contains("clashes"), "{e}");
        let target = routes.find("POST", "/invocations").unwrap();
        assert_eq!(
            (target.route.path.as_str(), target.model.as_str()),
            ("/invocations", "mlflow")
        );
        routes.release("mlflow", None);
        assert!(routes.find("POST", "/invocations").is_none());
    }
}
