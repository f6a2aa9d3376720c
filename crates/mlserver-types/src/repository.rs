//! The model repository extension's index types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A model's state as reported by `/v2/repository/index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ModelState {
    /// State not known.
    Unknown,
    /// Loaded and serving.
    Ready,
    /// Not loaded, or failed to load (`reason` says why).
    Unavailable,
    /// Being loaded.
    Loading,
    /// Being unloaded.
    Unloading,
}

impl ModelState {
    /// The wire name (`READY`, `UNAVAILABLE`, ...).
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
    /// When `true`, list only ready models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// One entry of the index response (a bare JSON array of these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryIndexItem {
    /// The model's name.
    pub name: String,
    /// The model's version, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its current state.
    pub state: ModelState,
    /// Why it is in that state (such as a load error); empty when there is nothing to say.
    #[serde(default)]
    pub reason: String,
}
