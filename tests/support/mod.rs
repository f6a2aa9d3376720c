//! Shared test support: the real server on a free loopback port, model
//! folders written on the fly, and the runtimes tests need.

pub mod debian;
pub mod kserve;
pub mod perf_analyzer;
pub mod python;
pub mod runtimes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlserver_runtime::RuntimeRegistry;
use mlserver_server::{Listeners, Server};
use mlserver_settings::{EnvSource, Settings};
use tokio::sync::oneshot;

/// The generated gRPC client of `inference.GRPCInferenceService`.
pub type InferenceClient =
    mlserver_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient<
        tonic::transport::Channel,
    >;
use tokio::task::JoinHandle;

/// Whether `MLSERVER_TEST_STRICT` is set (to anything but `0` or empty):
/// then a test whose real part (a daemon, PyPI, Debian's packages) cannot
/// be had fails instead of skipping. CI sets it.
pub fn strict() -> bool {
    std::env::var("MLSERVER_TEST_STRICT").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A test cannot have its real part: `what` it would test and `why` not.
/// Under [`strict`] this fails the test with the reason; otherwise it says
/// so loudly, and the caller returns.
pub fn missing_real_part(what: &str, why: &str) {
    if strict() {
        panic!("MLSERVER_TEST_STRICT: {what} cannot run: {why}");
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         SKIPPING {what}: {why}\n\
         (set MLSERVER_TEST_STRICT=1 to make this a failure)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
}

/// The repository's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `examples/models`, the folder the README serves.
pub fn examples_models() -> PathBuf {
    workspace_root().join("examples").join("models")
}

/// A running server; dropped or [`TestServer::stop`]ped, it shuts down.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The gRPC listener's address.
    pub grpc_addr: SocketAddr,
    /// The metrics listener's address (`None` with metrics off).
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    server_dataplane: Arc<mlserver_server::DataPlane>,
}

impl TestServer {
    /// Serves `folder` (its settings.json applies, then the port is forced to
    /// a free loopback one) with the test runtimes and an empty environment.
    pub async fn start(folder: &Path) -> Self {
        Self::start_with(folder, runtimes::test_runtimes(), |_| {}).await
    }

    /// Like [`TestServer::start`], with settings adjusted by `tweak`.
    pub async fn start_with(
        folder: &Path,
        runtimes: RuntimeRegistry,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::start_with_env(folder, runtimes, EnvSource::empty(), tweak).await
    }

    /// Like [`TestServer::start_with`], with `MLSERVER_*` variables from
    /// `env` (as if exported). Ports from settings are ignored: the server
    /// always gets free loopback ports.
    pub async fn start_with_env(
        folder: &Path,
        runtimes: RuntimeRegistry,
        env: EnvSource,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let env = Arc::new(env);
        let mut settings = mlserver_settings::load_settings(folder, &env).expect("settings");
        tweak(&mut settings);
        Self::serve(Server::new(settings, runtimes, env).expect("server")).await
    }

    /// Runs an already built server on a free loopback port.
    pub async fn serve(server: Server) -> Self {
        let listeners = Listeners::ephemeral("127.0.0.1").await.expect("bind");
        let addr = listeners.http.local_addr().expect("addr");
        let grpc_addr = listeners.grpc.local_addr().expect("addr");
        let metrics_addr = listeners
            .metrics
            .as_ref()
            .map(|l| l.local_addr().expect("addr"));
        let server_dataplane = server.dataplane().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.serve(listeners, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            grpc_addr,
            metrics_addr,
            client: reqwest::Client::builder()
                .no_gzip()
                .build()
                .expect("client"),
            shutdown: Some(tx),
            handle: Some(handle),
            server_dataplane,
        }
    }

    /// Serves `folder` and waits until the server reports ready.
    pub async fn start_ready(folder: &Path) -> Self {
        let s = Self::start(folder).await;
        s.wait_started().await;
        s
    }

    /// A gRPC client for `inference.GRPCInferenceService`, without message
    /// size limits of its own.
    pub async fn grpc(&self) -> InferenceClient {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc_addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("gRPC connect");
        InferenceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// A raw channel to the gRPC listener (for the other services).
    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc_addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("gRPC connect")
    }

    /// The metrics endpoint's text (`/metrics`).
    pub async fn scrape(&self) -> String {
        let addr = self.metrics_addr.expect("metrics are on");
        let response = self
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits until startup loading has finished (ready or not).
    pub async fn wait_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Read from the registry, not over HTTP: a test's requests are
            // the only ones its server sees (the metrics tests count them).
            let loading = self
                .server_dataplane
                .registry()
                .snapshot()
                .iter()
                .any(|(_, _, slot)| {
                    matches!(slot.state, mlserver_server::SlotState::Loading)
                        && slot.model.is_none()
                });
            if !loading && self.server_dataplane.started() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not finish loading in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// The repository index (`POST /v2/repository/index`, every model).
    pub async fn index(&self) -> serde_json::Value {
        self.post_json("/v2/repository/index", &serde_json::json!({}))
            .await
            .json()
            .await
            .expect("index JSON")
    }

    /// Stops the server and waits for it to finish (graceful shutdown).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A temporary models folder; `write` adds files relative to it.
pub struct ModelsDir {
    pub dir: tempfile::TempDir,
}

impl ModelsDir {
    pub fn new() -> Self {
        ModelsDir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, contents: &str) -> &Self {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
        self
    }

    /// Writes `<name>/model-settings.json` (or `<name>/<version>/...`).
    pub fn model(&self, folder: &str, settings: serde_json::Value) -> &Self {
        self.write(
            &format!("{folder}/model-settings.json"),
            &settings.to_string(),
        )
    }
}

impl Default for ModelsDir {
    fn default() -> Self {
        Self::new()
    }
}

/// Every file and folder under `dir` with its size and modification time,
/// sorted: what a server that writes nothing there leaves as it found
/// (models folders are read-only in Kubernetes).
pub fn tree_snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let meta = std::fs::symlink_metadata(e.path()).expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), meta.len(), meta.modified().expect("mtime")));
        }
    }
    out.sort();
    out
}
