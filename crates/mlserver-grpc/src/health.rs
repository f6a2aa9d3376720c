//! `grpc.health.v1.Health`, for Kubernetes gRPC probes.
//!
//! Service names: `""` and the data-plane services report readiness (every
//! model loaded, as `ServerReady`); `"liveness"` reports that the process
//! answers, for a liveness probe that must not restart a pod whose model
//! failed to load. Any other name is unknown.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use mlserver_proto::health::health_check_response::ServingStatus;
use mlserver_proto::health::health_server::Health;
use mlserver_proto::health::{HealthCheckRequest, HealthCheckResponse};
use tonic::{Request, Response, Status};

use mlserver_core::DataPlane;

/// How often `Watch` looks for a change.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

const READINESS_SERVICES: &[&str] = &[
    "",
    "inference.GRPCInferenceService",
    "inference.model_repository.ModelRepositoryService",
];
const LIVENESS_SERVICE: &str = "liveness";

pub(crate) struct HealthService {
    dataplane: Arc<DataPlane>,
}

impl HealthService {
    pub(crate) fn new(dataplane: Arc<DataPlane>) -> Self {
        HealthService { dataplane }
    }
}

/// The status of `service`, or `None` when no such service is served.
fn status_of(dataplane: &DataPlane, service: &str) -> Option<ServingStatus> {
    let up = if service == LIVENESS_SERVICE {
        dataplane.live()
    } else if READINESS_SERVICES.contains(&service) {
        dataplane.ready()
    } else {
        return None;
    };
    Some(if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    })
}

fn reply(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match status_of(&self.dataplane, &service) {
            Some(status) => Ok(Response::new(reply(status))),
            None => Err(Status::not_found(format!("unknown service '{service}'"))),
        }
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    /// Sends the current status, then each change, until the client leaves.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let dataplane = self.dataplane.clone();
        let stream = futures::stream::unfold(None, move |last: Option<ServingStatus>| {
            let dataplane = dataplane.clone();
            let service = service.clone();
            async move {
                loop {
                    let now =
                        status_of(&dataplane, &service).unwrap_or(ServingStatus::ServiceUnknown);
                    if last != Some(now) {
                        return Some((Ok(reply(now)), Some(now)));
                    }
                    tokio::time::sleep(WATCH_INTERVAL).await;
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
