//! Errors: one for loading settings, one for resolving a model's URI.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why `settings.json`, a `model-settings.json` or the environment could not
/// be turned into settings.
///
/// Every variant names the file or variable at fault, because the person
/// reading the error is usually staring at a folder of JSON files and a pod
/// spec full of `MLSERVER_*` variables and needs to know which one to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists (or was named) but could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid JSON, or a value has the wrong type.
    /// `message` is serde's, with line and column when it knows them.
    #[error("invalid settings in {}: {message}", path.display())]
    Invalid {
        /// The file with the invalid settings.
        path: PathBuf,
        /// What is wrong, in serde's words.
        message: String,
    },
    /// An `MLSERVER_*` variable (from the process or `.env`) has a value that
    /// does not fit its field, e.g. `MLSERVER_HTTP_PORT=abc`.
    #[error("invalid value in environment variable {var}: {message}")]
    Env {
        /// The variable's name, e.g. `MLSERVER_HTTP_PORT`.
        var: String,
        /// Why its value does not fit.
        message: String,
    },
}

/// MLServer's `InvalidModelURI` (HTTP 422): the model has no usable
/// `parameters.uri`.
///
/// `uri` is empty when the model has no URI at all; otherwise it is the
/// resolved local path that does not exist. The message matches MLServer's
/// word for word because clients and tests match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidModelUri {
    /// The model's name.
    pub name: String,
    /// The offending URI, or `""` when none was set.
    pub uri: String,
}

impl fmt::Display for InvalidModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid URI specified for model {}", self.name)?;
        if !self.uri.is_empty() {
            write!(f, " ({})", self.uri)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_uri_messages_match_mlserver() {
        let e = InvalidModelUri {
            name: "m".into(),
            uri: String::new(),
        };
        assert_eq!(e.to_string(), "Invalid URI specified for model m");
        let e = InvalidModelUri {
            name: "m".into(),
            uri: "/x/y".into(),
        };
        assert_eq!(e.to_string(), "Invalid URI specified for model m (/x/y)");
    }

    #[test]
    fn settings_errors_name_their_culprit() {
        let e = SettingsError::Env {
            var: "MLSERVER_HTTP_PORT".into(),
            message: "bad".into(),
        };
        assert!(e.to_string().contains("MLSERVER_HTTP_PORT"));
        let e = SettingsError::Invalid {
            path: "/a/settings.json".into(),
            message: "bad".into(),
        };
        assert!(e.to_string().contains("/a/settings.json"));
    }
}
