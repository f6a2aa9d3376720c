use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext};
use mlserver_types::{InferenceRequest, InferenceResponse, Parameters, Tensor};

/// A string model: BYTES (UTF-8) in; `output` (the transformed strings) and
/// `length` (characters per string, INT64) out. `parameters.extra.mode` picks
/// the transformation: `upper` (default) or `reverse`.
pub struct TextModel {
    mode: Mode,
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
        Ok(TextModel { mode })
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let input = request
            .inputs
            .first()
            .ok_or_else(|| MLServerError::inference("text needs one BYTES input"))?;
        let elements = input.as_slice::<Vec<u8>>()?;
        let mut texts = Vec::with_capacity(elements.len());
        let mut lengths = Vec::with_capacity(elements.len());
        for (i, e) in elements.iter().enumerate() {
            let s = std::str::from_utf8(e).map_err(|_| {
                MLServerError::inference(format!(
                    "element {i} of '{}' is not UTF-8 text",
                    input.name
                ))
            })?;
            lengths.push(s.chars().count() as i64);
            texts.push(match self.mode {
                Mode::Upper => s.to_uppercase(),
                Mode::Reverse => s.chars().rev().collect(),
            });
        }
        let mut str_params = Parameters::new();
        str_params.set_content_type("str");
        let output = Tensor::new("output", input.shape.clone(), texts)?.with_parameters(str_params);
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
