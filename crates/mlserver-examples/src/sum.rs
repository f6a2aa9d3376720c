use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext};
use mlserver_types::{InferenceRequest, InferenceResponse, Tensor, TensorData};

/// Sums each row of a numeric input: `[batch, ...]` in, `[batch, 1]` out,
/// named `output`. FP64 input gives FP64 output; every other numeric type
/// gives FP32.
pub struct SumModel;

#[async_trait]
impl MLModel for SumModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Ok(SumModel)
    }

    /// It reads tensors only: its requests skip the header copy.
    fn reads_headers(&self) -> bool {
        false
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let input = request
            .inputs
            .first()
            .ok_or_else(|| MLServerError::inference("sum needs one numeric input"))?;
        let rows = input.shape.first().copied().unwrap_or(1);
        let values = mlserver_types::codecs::to_f64_vec(input).map_err(|_| {
            MLServerError::inference(format!(
                "sum needs a numeric input; '{}' is {}",
                input.name, input.datatype
            ))
        })?;
        let per_row = values.len().checked_div(rows).unwrap_or(0);
        let sums: Vec<f64> = if per_row == 0 {
            vec![0.0; rows]
        } else {
            values.chunks(per_row).map(|r| r.iter().sum()).collect()
        };
        let data: TensorData = match input.data {
            TensorData::Fp64(_) => sums.into(),
            _ => sums
                .into_iter()
                .map(|s| s as f32)
                .collect::<Vec<f32>>()
                .into(),
        };
        Ok(InferenceResponse::new(vec![Tensor::new(
            "output",
            vec![rows, 1],
            data,
        )?]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sums_rows() {
        let model = SumModel::load(crate::testing::context(serde_json::json!({})))
            .await
            .unwrap();
        let x = Tensor::new("input", vec![2, 3], vec![1i32, 2, 3, 4, 5, 6]).unwrap();
        let r = model.predict(InferenceRequest::new(vec![x])).await.unwrap();
        assert_eq!(r.outputs[0].shape, vec![2, 1]);
        assert_eq!(r.outputs[0].as_slice::<f32>().unwrap(), &[6.0, 15.0]);
        let s = Tensor::new("input", vec![1], vec!["a"]).unwrap();
        assert!(model.predict(InferenceRequest::new(vec![s])).await.is_err());
    }
}
