use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext};
use mlserver_types::{InferenceRequest, InferenceResponse};

/// Returns its inputs unchanged. A single input comes back as `output`;
/// several come back under their own names.
pub struct EchoModel;

#[async_trait]
impl MLModel for EchoModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Ok(EchoModel)
    }

    /// It reads tensors only: its requests skip the header copy.
    fn reads_headers(&self) -> bool {
        false
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let single = request.inputs.len() == 1;
        let outputs = request
            .inputs
            .into_iter()
            .map(|mut t| {
                if single {
                    t.name = "output".to_owned();
                }
                t
            })
            .collect();
        Ok(InferenceResponse::new(outputs))
    }
}
