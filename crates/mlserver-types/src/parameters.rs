//! The free-form `parameters` object carried by requests, tensors and metadata.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Parameters as sent on the wire: a JSON object whose values may be strings,
/// numbers, booleans or (as MLServer allows) nested objects, kept as JSON.
///
/// Well-known keys get typed accessors; every other key is kept untouched and
/// forwarded to the runtime, as MLServer's `extra="allow"` model does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Parameters(pub Map<String, Value>);

impl Parameters {
    /// Key of the codec hint read by [`Parameters::content_type`].
    pub const CONTENT_TYPE: &'static str = "content_type";
    /// Key of the HTTP headers passed to or returned by the model.
    pub const HEADERS: &'static str = "headers";
    /// Key of a tensor's data size in bytes when it travels in the binary extension.
    pub const BINARY_DATA_SIZE: &'static str = "binary_data_size";
    /// Key on a requested output asking for it as binary (`true`) or JSON (`false`).
    pub const BINARY_DATA: &'static str = "binary_data";
    /// Request-level key asking for every output as binary unless the output says otherwise.
    pub const BINARY_DATA_OUTPUT: &'static str = "binary_data_output";

    /// An empty parameters object.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Sets `key`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The codec hint (`np`, `str`, `base64`, `datetime`, `pd`, ...).
    pub fn content_type(&self) -> Option<&str> {
        self.0.get(Self::CONTENT_TYPE).and_then(Value::as_str)
    }

    /// Sets the codec hint.
    pub fn set_content_type(&mut self, content_type: impl Into<String>) {
        self.insert(Self::CONTENT_TYPE, content_type.into());
    }

    /// Request headers surfaced to the model, or response headers the model
    /// wants sent back.
    pub fn headers(&self) -> Option<&Map<String, Value>> {
        self.0.get(Self::HEADERS).and_then(Value::as_object)
    }

    /// The value under `key`, if it is a JSON boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.0.get(key).and_then(Value::as_bool)
    }

    /// The value under `key`, if it is a JSON integer that fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }
}

impl From<Map<String, Value>> for Parameters {
    fn from(map: Map<String, Value>) -> Self {
        Parameters(map)
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Parameters {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Parameters(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The `content_type` of an optional parameters object.
pub fn content_type_of(parameters: &Option<Parameters>) -> Option<&str> {
    parameters.as_ref().and_then(Parameters::content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_nested_values_and_reads_known_keys() {
        let p: Parameters = serde_json::from_str(
            r#"{"content_type":"np","headers":{"x":"1"},"extra":{"a":[1,2]},"n":3,"b":true}"#,
        )
        .unwrap();
        assert_eq!(p.content_type(), Some("np"));
        assert_eq!(p.headers().unwrap()["x"], "1");
        assert_eq!(p.get("extra").unwrap()["a"][1], 2);
        assert_eq!(p.get_u64("n"), Some(3));
        assert_eq!(p.get_bool("b"), Some(true));
        let back: Parameters = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
