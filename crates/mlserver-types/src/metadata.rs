//! Server and model metadata, health bodies and the error body.

use serde::{Deserialize, Serialize};

use crate::{Datatype, Parameters};

/// `$metadata_tensor`: shapes may use `-1` for a variable dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataTensor {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub datatype: Datatype,
    /// Its shape; `-1` marks a variable dimension.
    pub shape: Vec<i64>,
    /// Tensor-level parameters (MLServer keeps `content_type` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

impl MetadataTensor {
    /// A metadata tensor with no parameters.
    pub fn new(name: impl Into<String>, datatype: Datatype, shape: Vec<i64>) -> Self {
        MetadataTensor {
            name: name.into(),
            datatype,
            shape,
            parameters: None,
        }
    }

    /// The `content_type` parameter, if any.
    pub fn content_type(&self) -> Option<&str> {
        crate::parameters::content_type_of(&self.parameters)
    }

    /// Whether a concrete shape fits this one. Ranks that differ are let
    /// through: MLServer's codecs add and drop trailing unit dimensions
    /// (`[N]` vs `[N,1]`), and model-settings written for MLServer rely on it.
    pub fn shape_accepts(&self, shape: &[usize]) -> bool {
        if self.shape.len() != shape.len() {
            return true;
        }
        self.shape
            .iter()
            .zip(shape)
            .all(|(&want, &got)| want < 0 || want as u64 == got as u64)
    }
}

/// `$metadata_server_response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataServerResponse {
    /// The server's name.
    pub name: String,
    /// The server's version.
    pub version: String,
    /// The protocol extensions the server supports.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `$metadata_model_response` (MLServer adds `parameters`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataModelResponse {
    /// The model's name.
    pub name: String,
    /// The model's versions.
    #[serde(default)]
    pub versions: Vec<String>,
    /// The framework or platform the model runs on; may be empty.
    #[serde(default)]
    pub platform: String,
    /// The inputs the model expects.
    #[serde(default)]
    pub inputs: Vec<MetadataTensor>,
    /// The outputs the model produces.
    #[serde(default)]
    pub outputs: Vec<MetadataTensor>,
    /// Model-level parameters (`content_type`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// `{"error": "..."}`, the body of every failed call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: String,
}

/// `GET /v2/health/live` body (the kserve SDK parses it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LiveResponse {
    /// Whether the server is live.
    pub live: bool,
}

/// `GET /v2/health/ready` body.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReadyResponse {
    /// Whether the server is ready to serve.
    pub ready: bool,
}

/// `GET /v2/models/{m}/ready` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReadyResponse {
    /// The model's name.
    pub name: String,
    /// Whether the model is ready to serve.
    pub ready: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matching_uses_wildcards() {
        let m = MetadataTensor::new("x", Datatype::Fp32, vec![-1, 4]);
        assert!(m.shape_accepts(&[7, 4]));
        assert!(!m.shape_accepts(&[7, 3]));
        assert!(m.shape_accepts(&[28]));
    }
}
