//! The model repository extension's index types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A model's state as reported by `/v2/repository/index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ModelState {
    Unknown,
    Ready,
    Unavailable,
    Loading,
    Unloading,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Unknown => "UNKNOWN",
            ModelState::Ready => "READY",
            ModelState::Unavailable => "UNAVAILABLE",
            ModelState::Loading => "LOADING",
            ModelState::Unloading => "UNLOADING",
        }
    }
}

impl fmt::Display for ModelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v2/repository/index` body; `ready: true` lists only ready models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepositoryIndexRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// One entry of the index response (a bare JSON array of these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryIndexItem {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub state: ModelState,
    #[serde(default)]
    pub reason: String,
}
