//! `inference.model_repository.ModelRepositoryService`, MLServer's older
//! repository service: deprecated upstream, served for old clients.

use std::sync::{Arc, Once};

use mlserver_proto::inference::model_repository::model_repository_service_server::ModelRepositoryService;
use mlserver_proto::inference::model_repository::repository_index_response::ModelIndex;
use mlserver_proto::inference::model_repository::*;
use tonic::{Request, Response, Status};

use super::to_status;
use mlserver_core::ModelRepository;

pub(crate) struct LegacyRepositoryService {
    repository: Arc<ModelRepository>,
}

impl LegacyRepositoryService {
    pub(crate) fn new(repository: Arc<ModelRepository>) -> Self {
        LegacyRepositoryService { repository }
    }
}

fn warn_deprecated() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "a client uses the deprecated inference.model_repository.ModelRepositoryService; \
             the same RPCs are on inference.GRPCInferenceService"
        )
    });
}

#[tonic::async_trait]
impl ModelRepositoryService for LegacyRepositoryService {
    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        warn_deprecated();
        let models = self
            .repository
            .index(request.into_inner().ready)
            .await
            .map_err(to_status)?
            .into_iter()
            .map(|item| ModelIndex {
                name: item.name,
                version: item.version.unwrap_or_default(),
                state: item.state.as_str().to_owned(),
                reason: item.reason,
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        warn_deprecated();
        let name = request.into_inner().model_name;
        self.repository.load(&name).await.map_err(to_status)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        warn_deprecated();
        let name = request.into_inner().model_name;
        self.repository.unload(&name).await.map_err(to_status)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }
}
