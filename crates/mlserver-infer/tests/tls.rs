//! `--use-ssl` and `--insecure` over both transports: our server (the
//! example runtimes) behind a TLS-terminating proxy with a self-signed
//! certificate for `localhost`, on free loopback ports.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use mlserver_infer::{InferArgs, Transport};
use mlserver_runtime::RuntimeRegistry;
use mlserver_server::{Listeners, Server};
use mlserver_settings::{EnvSource, Settings};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Our server with the sum runtime, on ephemeral ports: (REST, gRPC).
async fn start_server(models: &Path) -> (SocketAddr, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    std::fs::create_dir_all(models.join("sum-model")).unwrap();
    std::fs::write(
        models.join("sum-model/model-settings.json"),
        r#"{"name": "sum-model", "implementation": "sum"}"#,
    )
    .unwrap();
    let env = Arc::new(EnvSource::empty());
    let settings: Settings = mlserver_settings::load_settings(models, &env).unwrap();
    let mut runtimes = RuntimeRegistry::new();
    mlserver_examples::register(&mut runtimes);
    let server = Server::new(settings, runtimes, env).unwrap();
    let listeners = Listeners::ephemeral("127.0.0.1").await.unwrap();
    let rest = listeners.http.local_addr().unwrap();
    let grpc = listeners.grpc.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listeners, async move {
        let _ = rx.await;
    }));
    // Ready once the model answers.
    let client = reqwest::Client::new();
    for _ in 0..500 {
        let ready = client
            .get(format!("http://{rest}/v2/models/sum-model/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return (rest, grpc, tx);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the server did not get ready");
}

/// A TLS proxy to `backend`, with a self-signed certificate for localhost.
async fn tls_proxy(backend: SocketAddr) -> SocketAddr {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    addr
}

async fn run(
    dir: &Path,
    transport: Transport,
    port: u16,
    insecure: bool,
) -> Vec<serde_json::Value> {
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        r#"{"id":"a","inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[1,2]}]}"#,
    )
    .unwrap();
    let output = dir.join(format!("out-{transport:?}-{port}-{insecure}.jsonl"));
    let mut args = InferArgs::new("sum-model", &input, &output);
    args.url = format!("localhost:{port}");
    args.transport = transport;
    args.use_ssl = true;
    args.insecure = insecure;
    args.retries = 1;
    args.timeout = 10;
    mlserver_infer::run_async(args).await.expect("the run");
    std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_ssl_over_rest_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (rest, grpc, _stop) = start_server(&dir.path().join("models")).await;
    let rest_tls = tls_proxy(rest).await;
    let grpc_tls = tls_proxy(grpc).await;
    for (transport, port) in [
        (Transport::Rest, rest_tls.port()),
        (Transport::Grpc, grpc_tls.port()),
    ] {
        // --insecure: the self-signed certificate is accepted.
        let lines = run(dir.path(), transport, port, true).await;
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0]["outputs"][0]["data"],
            serde_json::json!([3.0]),
            "{transport:?}: {}",
            lines[0]
        );
        assert_eq!(lines[0]["id"], "a");

        // Without it, the certificate is checked against the system's
        // roots and refused: the request fails and is reported.
        let lines = run(dir.path(), transport, port, false).await;
        assert_eq!(lines.len(), 1);
        let msg = lines[0]["error"]["msg"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            msg.contains("invalid peer certificate: unknownissuer"),
            "{transport:?}: {}",
            lines[0]
        );
    }
    // TLS to a plain port fails too.
    let lines = run(dir.path(), Transport::Rest, rest.port(), true).await;
    assert!(lines[0]["error"].is_object(), "{}", lines[0]);
}
