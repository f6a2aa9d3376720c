use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext};
use mlserver_types::codecs::{self, Decoded};
use mlserver_types::{InferenceRequest, InferenceResponse, Tensor};

/// A string model: BYTES (UTF-8) in; `output` (the transformed strings) and
/// `length` (characters per string, INT64) out. `parameters.extra.mode` picks
/// the transformation: `upper` (default) or `reverse`.
pub struct TextModel {
    mode: Mode,
    ctx: ModelContext,
}

#[derive(Clone, Copy)]
enum Mode {
    Upper,
    Reverse,
}

#[async_trait]
impl MLModel for TextModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        let mode = match ctx
            .extra()
            .and_then(|e| e.get("mode"))
            .and_then(|m| m.as_str())
        {
            None | Some("upper") => Mode::Upper,
            Some("reverse") => Mode::Reverse,
            Some(other) => {
                return Err(MLServerError::bad_request(format!(
                    "text model {}: unknown mode '{other}' (expected 'upper' or 'reverse')",
                    ctx.name()
                )))
            }
        };
        Ok(TextModel { mode, ctx })
    }

    /// It reads tensors only: its requests skip the header copy.
    fn reads_headers(&self) -> bool {
        false
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let input = request
            .inputs
            .first()
            .ok_or_else(|| MLServerError::inference("text needs one BYTES input"))?;
        // MLServer's StringCodec: BYTES as UTF-8 text (a clear error if not).
        let strings =
            codecs::decode_strings(input).map_err(|e| MLServerError::inference(e.to_string()))?;
        let lengths: Vec<i64> = strings.iter().map(|s| s.chars().count() as i64).collect();
        let texts: Vec<String> = strings
            .iter()
            .map(|s| match self.mode {
                Mode::Upper => s.to_uppercase(),
                Mode::Reverse => s.chars().rev().collect(),
            })
            .collect();
        // Encoded as model-settings declares (`str` by default), in the
        // input's shape.
        let mut output = self.ctx.encode_output("output", Decoded::Strings(texts))?;
        output.shape = input.shape.clone();
        let length = Tensor::new("length", input.shape.clone(), lengths)?;
        Ok(InferenceResponse::new(vec![output, length]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transforms_by_mode() {
        let upper = TextModel::load(crate::testing::context(serde_json::json!({})))
            .await
            .unwrap();
        let reverse = TextModel::load(crate::testing::context(
            serde_json::json!({"mode": "reverse"}),
        ))
        .await
        .unwrap();
        let req = || {
            InferenceRequest::new(vec![
                Tensor::new("text", vec![2], vec!["héllo", "ab"]).unwrap()
            ])
        };
        let r = upper.predict(req()).await.unwrap();
        assert_eq!(r.outputs[0].data, vec!["HÉLLO", "AB"].into());
        assert_eq!(r.outputs[1].as_slice::<i64>().unwrap(), &[5, 2]);
        let r = reverse.predict(req()).await.unwrap();
        assert_eq!(r.outputs[0].data, vec!["olléh", "ba"].into());
        assert!(
            TextModel::load(crate::testing::context(serde_json::json!({"mode": "x"})))
                .await
                .is_err()
        );
    }
}
