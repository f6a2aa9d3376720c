//! CORS from MLServer's `cors_settings` (off unless set).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use mlserver_settings::CorsSettings;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

/// Why `cors_settings` cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum CorsError {
    /// `allow_origin_regex` does not compile.
    #[error("cors_settings.allow_origin_regex {0:?} is not a valid regular expression: {1}")]
    Regex(String, regex_lite::Error),
    /// An origin, method or header that is not valid HTTP.
    #[error("cors_settings: {0:?} is not a valid {1}")]
    Invalid(String, &'static str),
}

/// The CORS layer for `settings`, following Starlette's `CORSMiddleware`
/// (which MLServer uses): `"*"` allows any origin, method or header; with
/// `allow_credentials` a wildcard answers with the request's own value, as
/// browsers refuse `*` on credentialed requests. Unlike MLServer,
/// `expose_headers` is applied.
pub fn cors_layer(settings: &CorsSettings) -> Result<CorsLayer, CorsError> {
    let wildcard = |list: &[String]| list.iter().any(|v| v == "*");
    let credentials = settings.allow_credentials;

    let origins = if wildcard(&settings.allow_origins) {
        if credentials {
            AllowOrigin::mirror_request()
        } else {
            AllowOrigin::any()
        }
    } else {
        let listed: Vec<String> = settings.allow_origins.clone();
        let regex = settings
            .allow_origin_regex
            .as_deref()
            .map(|r| {
                // Starlette matches the whole origin.
                regex_lite::Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| CorsError::Regex(r.to_owned(), e))
            })
            .transpose()?;
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            listed.iter().any(|o| o == origin) || regex.as_ref().is_some_and(|r| r.is_match(origin))
        })
    };

    let methods = if wildcard(&settings.allow_methods) {
        if credentials {
            AllowMethods::mirror_request()
        } else {
            AllowMethods::any()
        }
    } else {
        let methods = settings
            .allow_methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| CorsError::Invalid(m.clone(), "HTTP method"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowMethods::list(methods)
    };

    let headers = if wildcard(&settings.allow_headers) {
        if credentials {
            AllowHeaders::mirror_request()
        } else {
            AllowHeaders::any()
        }
    } else {
        AllowHeaders::list(header_names(&settings.allow_headers)?)
    };

    let expose = if wildcard(&settings.expose_headers) && !credentials {
        ExposeHeaders::any()
    } else {
        ExposeHeaders::list(header_names(
            &settings
                .expose_headers
                .iter()
                .filter(|h| *h != "*")
                .cloned()
                .collect::<Vec<_>>(),
        )?)
    };

    Ok(CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers(expose)
        .allow_credentials(credentials)
        .max_age(Duration::from_secs(settings.max_age)))
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>, CorsError> {
    names
        .iter()
        .map(|h| {
            HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map_err(|_| CorsError::Invalid(h.clone(), "header name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_with_credentials_do_not_panic() {
        let settings = CorsSettings {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            expose_headers: vec!["*".into()],
            allow_credentials: true,
            ..CorsSettings::default()
        };
        let layer = cors_layer(&settings).unwrap();
        // tower-http validates the combination when the layer wraps a service.
        let _ = tower::Layer::layer(
            &layer,
            tower::service_fn(|_: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(()))
            }),
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let settings = CorsSettings {
            allow_origin_regex: Some("(".into()),
            ..CorsSettings::default()
        };
        assert!(matches!(cors_layer(&settings), Err(CorsError::Regex(..))));
        let settings = CorsSettings {
            allow_methods: vec!["GE T".into()],
            ..CorsSettings::default()
        };
        assert!(matches!(cors_layer(&settings), Err(CorsError::Invalid(..))));
    }
}
