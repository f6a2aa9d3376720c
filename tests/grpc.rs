//! The gRPC API end to end: the real server on free loopback ports, the
//! generated tonic client on the other side.

use mlserver_proto::convert::{decode_infer_response, encode_infer_request};
use mlserver_proto::health::health_check_response::ServingStatus;
use mlserver_proto::health::health_client::HealthClient;
use mlserver_proto::health::HealthCheckRequest;
use mlserver_proto::inference::model_repository as legacy;
use mlserver_proto::inference::model_repository::model_repository_service_client::ModelRepositoryServiceClient;
use mlserver_proto::inference::*;
use mlserver_tests::{examples_models, runtimes::test_runtimes, ModelsDir, TestServer};
use mlserver_types::{bf16, f16, InferenceRequest, RequestOutput, Tensor, TensorData};
use serde_json::json;
use tonic::{Code, Request};

fn every_datatype() -> Vec<Tensor> {
    let t =
        |name: &str, shape: Vec<usize>, data: TensorData| Tensor::new(name, shape, data).unwrap();
    vec![
        t("bool", vec![2], TensorData::Bool(vec![true, false])),
        t("u8", vec![1, 2], TensorData::Uint8(vec![0, 255])),
        t("u16", vec![2], TensorData::Uint16(vec![1, u16::MAX])),
        t("u32", vec![2], TensorData::Uint32(vec![1, u32::MAX])),
        t("u64", vec![2], TensorData::Uint64(vec![1, u64::MAX])),
        t("i8", vec![2], TensorData::Int8(vec![i8::MIN, i8::MAX])),
        t("i16", vec![2], TensorData::Int16(vec![i16::MIN, i16::MAX])),
        t(
            "i32",
            vec![2, 1],
            TensorData::Int32(vec![i32::MIN, i32::MAX]),
        ),
        t("i64", vec![2], TensorData::Int64(vec![i64::MIN, i64::MAX])),
        t("fp32", vec![2], TensorData::Fp32(vec![0.5, -1e30])),
        t("fp64", vec![2], TensorData::Fp64(vec![0.1, f64::MAX])),
        t(
            "bytes",
            vec![3],
            TensorData::Bytes(vec![b"h\xc3\xa9".to_vec(), vec![], vec![0, 255]]),
        ),
    ]
}

fn half_floats() -> Vec<Tensor> {
    vec![
        Tensor::new(
            "fp16",
            vec![2],
            vec![f16::from_f32(0.5), f16::from_f32(-2.0)],
        )
        .unwrap(),
        Tensor::new("bf16", vec![1], vec![bf16::from_f32(3.0)]).unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metadata_and_readiness() {
    let s = TestServer::start_ready(&examples_models()).await;
    let mut c = s.grpc().await;

    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        c.model_ready(ready("sum-model", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        c.model_ready(ready("text-model", "2"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let e = c.model_ready(ready("no-such-model", "")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "Model no-such-model not found");
    let e = c.model_ready(ready("text-model", "9")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "Model text-model with version 9 not found")
    );

    let meta = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        meta.extensions.contains(&"binary_tensor_data".to_owned()),
        "{meta:?}"
    );
    assert!(!meta.version.is_empty());

    let m = c
        .model_metadata(ModelMetadataRequest {
            name: "sum-model".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.name, "sum-model");
    assert_eq!(
        (m.inputs[0].name.as_str(), m.inputs[0].datatype.as_str()),
        ("input", "FP32")
    );
    assert_eq!(m.inputs[0].shape, vec![-1, -1]);
    let text = c
        .model_metadata(ModelMetadataRequest {
            name: "text-model".into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        text.inputs[0].parameters.contains_key("content_type"),
        "{text:?}"
    );
    let e = c
        .model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // grpc.health.v1 for Kubernetes probes.
    let mut health = HealthClient::new(s.grpc_channel().await);
    for service in ["", "inference.GRPCInferenceService", "liveness"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }
    let e = health
        .check(HealthCheckRequest {
            service: "bogus".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_not_serving_while_a_model_is_broken() {
    let dir = ModelsDir::new();
    dir.model("broken", json!({"implementation": "test.Broken"}));
    let s = TestServer::start_ready(dir.path()).await;
    let mut health = HealthClient::new(s.grpc_channel().await);
    let status = |service: &'static str| {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status
        }
    };
    assert_eq!(status("").await, ServingStatus::NotServing as i32);
    assert_eq!(status("liveness").await, ServingStatus::Serving as i32);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::NotServing as i32);
    drop(watch);
    let mut c = s.grpc().await;
    assert!(
        !c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_datatype_typed_and_raw() {
    let s = TestServer::start_ready(&examples_models()).await;
    let mut c = s.grpc().await;
    for raw in [false, true] {
        let mut request = InferenceRequest::new(every_datatype());
        request.id = Some(format!("req-{raw}"));
        let wire = encode_infer_request("echo-model", None, request.clone(), raw);
        assert_eq!(wire.raw_input_contents.is_empty(), !raw);
        let reply = c.model_infer(wire).await.unwrap().into_inner();
        // Raw in, raw out (tritonclient reads only raw_output_contents);
        // typed in, typed out.
        assert_eq!(reply.raw_output_contents.len(), if raw { 12 } else { 0 });
        assert!(reply.outputs.iter().all(|o| o.contents.is_some() != raw));
        assert_eq!(reply.model_name, "echo-model");
        assert_eq!(reply.id, format!("req-{raw}"));
        let response = decode_infer_response(reply).unwrap();
        assert_eq!(response.outputs, request.inputs);
    }

    // FP16/BF16 exist only raw, both ways.
    let request = InferenceRequest::new(half_floats());
    let reply = c
        .model_infer(encode_infer_request(
            "echo-model",
            None,
            request.clone(),
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.raw_output_contents.len(), 2);
    assert_eq!(
        decode_infer_response(reply).unwrap().outputs,
        request.inputs
    );

    // A computing model, typed, with a requested output and a version.
    let x = Tensor::new("input", vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
    let mut request = InferenceRequest::new(vec![x]);
    request.outputs = Some(vec![RequestOutput::new("output")]);
    let reply = c
        .model_infer(encode_infer_request("sum-model", None, request, false))
        .await
        .unwrap()
        .into_inner();
    let out = &reply.outputs[0];
    assert_eq!(
        (out.name.as_str(), out.shape.clone()),
        ("output", vec![2, 1])
    );
    assert_eq!(
        out.contents.as_ref().unwrap().fp32_contents,
        vec![6.0, 15.5]
    );
    assert!(
        reply.id.is_empty(),
        "as MLServer: a gRPC request without an id gets none back"
    );

    let words = Tensor::new("text", vec![2], TensorData::from(vec!["hello", "wörld"])).unwrap();
    let reply = c
        .model_infer(encode_infer_request(
            "text-model",
            Some("2"),
            InferenceRequest::new(vec![words]),
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.model_version, "2");
    let out = reply.outputs.iter().find(|o| o.name == "output").unwrap();
    assert_eq!(
        out.contents.as_ref().unwrap().bytes_contents,
        vec![&b"olleh"[..], "dlröw".as_bytes()]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_statuses() {
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));
    dir.model(
        "sum",
        json!({"implementation": "sum", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}]}),
    );
    dir.model("panicky", json!({"implementation": "test.Panicky"}));
    // strict_inputs: declared inputs are enforced (MLServer passes them on).
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.strict_inputs = true;
    })
    .await;
    s.wait_started().await;
    let mut c = s.grpc().await;

    let fp32 = |v: Vec<f32>| InferTensorContents {
        fp32_contents: v,
        ..Default::default()
    };
    let input = |name: &str, dt: &str, shape: Vec<i64>, contents: Option<InferTensorContents>| {
        model_infer_request::InferInputTensor {
            name: name.into(),
            datatype: dt.into(),
            shape,
            parameters: Default::default(),
            contents,
        }
    };
    let req = |model: &str, inputs, raw: Vec<Vec<u8>>| ModelInferRequest {
        model_name: model.into(),
        inputs,
        raw_input_contents: raw.into_iter().map(Into::into).collect(),
        ..Default::default()
    };
    let cases: Vec<(ModelInferRequest, Code, &str)> = vec![
        (
            req("nope", vec![], vec![]),
            Code::NotFound,
            "Model nope not found",
        ),
        (
            ModelInferRequest {
                model_version: "7".into(),
                ..req("echo", vec![], vec![])
            },
            Code::NotFound,
            "Model echo with version 7 not found",
        ),
        (
            req(
                "echo",
                vec![input("x", "FP32", vec![2, 2], Some(fp32(vec![1.0; 3])))],
                vec![],
            ),
            Code::InvalidArgument,
            "needs 4 elements",
        ),
        (
            req(
                "echo",
                vec![input("x", "FLOAT", vec![1], Some(fp32(vec![1.0])))],
                vec![],
            ),
            Code::InvalidArgument,
            "FLOAT",
        ),
        (
            req(
                "echo",
                vec![input("x", "INT32", vec![1], Some(fp32(vec![1.0])))],
                vec![],
            ),
            Code::InvalidArgument,
            "int_contents",
        ),
        (
            req(
                "echo",
                vec![
                    input("a", "INT32", vec![1], None),
                    input("b", "INT32", vec![1], None),
                ],
                vec![vec![0; 4]],
            ),
            Code::InvalidArgument,
            "one entry per input",
        ),
        (
            req(
                "echo",
                vec![input("a", "INT32", vec![2], None)],
                vec![vec![0; 4]],
            ),
            Code::InvalidArgument,
            "4 bytes",
        ),
        (
            req(
                "echo",
                vec![
                    input("a", "INT32", vec![1], None),
                    input("b", "FP32", vec![1], Some(fp32(vec![1.0]))),
                ],
                vec![vec![0; 4], vec![0; 4]],
            ),
            Code::InvalidArgument,
            "mixed",
        ),
        (
            req(
                "sum",
                vec![input(
                    "input",
                    "FP64",
                    vec![1, 1],
                    Some(InferTensorContents {
                        fp64_contents: vec![1.0],
                        ..Default::default()
                    }),
                )],
                vec![],
            ),
            Code::InvalidArgument,
            "expects FP32",
        ),
        (
            req(
                "panicky",
                vec![input("x", "FP32", vec![1], Some(fp32(vec![-1.0])))],
                vec![],
            ),
            Code::Internal,
            "panicked",
        ),
    ];
    for (request, code, needle) in cases {
        let e = c.model_infer(request).await.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(needle), "{needle:?} not in {e:?}");
    }
    // An output the model does not produce: MLServer's answer, what it has.
    let asked = ModelInferRequest {
        outputs: vec![model_infer_request::InferRequestedOutputTensor {
            name: "missing".into(),
            parameters: Default::default(),
        }],
        ..req(
            "echo",
            vec![input("x", "FP32", vec![1], Some(fp32(vec![1.0])))],
            vec![],
        )
    };
    let reply = c.model_infer(asked).await.unwrap().into_inner();
    assert_eq!(reply.outputs.len(), 1, "{reply:?}");
    // Still serving after all that.
    let ok = c
        .model_infer(req(
            "echo",
            vec![input("x", "FP32", vec![1], Some(fp32(vec![1.0])))],
            vec![],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ok.outputs[0].contents.as_ref().unwrap().fp32_contents,
        vec![1.0]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_answers_each_request_in_order() {
    let s = TestServer::start_ready(&examples_models()).await;
    let mut c = s.grpc().await;
    let requests: Vec<ModelInferRequest> = (0..40)
        .map(|i| {
            let mut r =
                InferenceRequest::new(vec![
                    Tensor::new("input", vec![1, 2], vec![i as f32, 1.0]).unwrap()
                ]);
            r.id = Some(format!("r{i}"));
            // Alternate models and raw/typed: each request stands alone.
            let model = if i % 2 == 0 {
                "sum-model"
            } else {
                "echo-model"
            };
            encode_infer_request(model, None, r, i % 3 == 0)
        })
        .collect();
    let replies: Vec<ModelInferResponse> = c
        .model_stream_infer(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(replies.len(), 40);
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.id, format!("r{i}"));
        assert_eq!(reply.raw_output_contents.is_empty(), i % 3 != 0);
        let response = decode_infer_response(reply).unwrap();
        let first = response.outputs[0].as_slice::<f32>().unwrap()[0];
        if i % 2 == 0 {
            assert_eq!(response.model_name, "sum-model");
            assert_eq!(first, i as f32 + 1.0);
        } else {
            assert_eq!(response.model_name, "echo-model");
            assert_eq!(first, i as f32);
        }
    }

    // A failing request ends the stream with its status, after the replies
    // to the requests before it.
    let good = encode_infer_request(
        "echo-model",
        None,
        InferenceRequest::new(vec![Tensor::new("x", vec![1], vec![1i32]).unwrap()]),
        false,
    );
    let bad = ModelInferRequest {
        model_name: "nope".into(),
        ..Default::default()
    };
    let mut stream = c
        .model_stream_infer(tokio_stream::iter(vec![good.clone(), bad, good]))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let e = stream.message().await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    s.stop().await;
}

/// A client that keeps a stream open cannot hold a shutdown up: near the
/// end of `shutdown_timeout` the stream is cut with UNAVAILABLE and the
/// server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_stream_without_end() {
    let s = TestServer::start_with(&examples_models(), test_runtimes(), |s| {
        s.shutdown_timeout = 4.0;
    })
    .await;
    s.wait_started().await;
    let mut c = s.grpc().await;
    let first = encode_infer_request(
        "echo-model",
        None,
        InferenceRequest::new(vec![Tensor::new("x", vec![1], vec![1i32]).unwrap()]),
        false,
    );
    // One request, then the request stream stays open, waiting forever.
    let requests = tokio_stream::iter(vec![first]).chain(futures::stream::pending());
    let mut replies = c.model_stream_infer(requests).await.unwrap().into_inner();
    assert!(replies.message().await.unwrap().is_some());
    let stop = tokio::spawn(s.stop());
    let cut = replies.message().await.expect_err("the stream is cut");
    assert_eq!(cut.code(), Code::Unavailable, "{cut:?}");
    // Not a timing assertion: a hang check, far above the 4 s grace.
    tokio::time::timeout(std::time::Duration::from_secs(60), stop)
        .await
        .expect("shutdown waited on an open stream")
        .unwrap();
    drop((replies, c));
}

use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_rpcs_on_both_services() {
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));
    dir.model("broken", json!({"implementation": "test.Broken"}));
    let s = TestServer::start_ready(dir.path()).await;
    let mut c = s.grpc().await;

    let index = |ready: bool| RepositoryIndexRequest {
        repository_name: String::new(),
        ready,
    };
    let all = c
        .repository_index(index(false))
        .await
        .unwrap()
        .into_inner()
        .models;
    let state = |name: &str| all.iter().find(|m| m.name == name).map(|m| m.state.clone());
    assert_eq!(state("echo").as_deref(), Some("READY"));
    assert_eq!(state("broken").as_deref(), Some("UNAVAILABLE"));
    let broken = all.iter().find(|m| m.name == "broken").unwrap();
    assert!(!broken.reason.is_empty());
    let ready = c
        .repository_index(index(true))
        .await
        .unwrap()
        .into_inner()
        .models;
    assert_eq!(
        ready.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        vec!["echo"]
    );

    let unload = |name: &str| RepositoryModelUnloadRequest {
        model_name: name.into(),
        ..Default::default()
    };
    let load = |name: &str| RepositoryModelLoadRequest {
        model_name: name.into(),
        ..Default::default()
    };
    c.repository_model_unload(unload("echo")).await.unwrap();
    let e = c
        .model_ready(ModelReadyRequest {
            name: "echo".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.repository_model_unload(unload("echo")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    c.repository_model_load(load("echo")).await.unwrap();
    assert!(
        c.model_ready(ModelReadyRequest {
            name: "echo".into(),
            version: String::new()
        })
        .await
        .unwrap()
        .into_inner()
        .ready
    );
    let e = c
        .repository_model_load(load("not-on-disk"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // A load failure keeps the runtime's own error class (here INTERNAL).
    let e = c.repository_model_load(load("broken")).await.unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(e.message().contains("weights file is corrupt"), "{e:?}");
    for name in ["../echo", "a/b", "..", ""] {
        let e = c.repository_model_load(load(name)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name:?}");
        let e = c.repository_model_unload(unload(name)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name:?}");
    }

    // The deprecated service still works.
    let mut old = ModelRepositoryServiceClient::new(s.grpc_channel().await);
    let models = old
        .repository_index(legacy::RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .unwrap()
        .into_inner()
        .models;
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].state, "READY");
    old.repository_model_unload(legacy::RepositoryModelUnloadRequest {
        repository_name: String::new(),
        model_name: "echo".into(),
    })
    .await
    .unwrap();
    old.repository_model_load(legacy::RepositoryModelLoadRequest {
        repository_name: String::new(),
        model_name: "echo".into(),
    })
    .await
    .unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_in_headers_out() {
    let dir = ModelsDir::new();
    dir.model("headers", json!({"implementation": "test.Headers"}));
    let s = TestServer::start_ready(dir.path()).await;
    let mut c = s.grpc().await;
    let mut request = Request::new(encode_infer_request(
        "headers",
        None,
        InferenceRequest::new(vec![Tensor::new("x", vec![1], vec![1i32]).unwrap()]),
        false,
    ));
    request
        .metadata_mut()
        .insert("x-client", "abc".parse().unwrap());
    let response = c.model_infer(request).await.unwrap();
    assert_eq!(
        response
            .metadata()
            .get("x-model-header")
            .and_then(|v| v.to_str().ok()),
        Some("yes")
    );
    let seen = &response.get_ref().outputs[0]
        .contents
        .as_ref()
        .unwrap()
        .bytes_contents[0];
    let seen: serde_json::Value = serde_json::from_slice(seen).unwrap();
    assert_eq!(seen["x-client"], "abc", "{seen}");
    // As grpcio's invocation metadata: no transport headers.
    for transport in ["te", "content-type"] {
        assert!(seen.get(transport).is_none(), "{seen}");
    }
    assert!(
        response.get_ref().parameters.is_empty(),
        "headers are not echoed as parameters"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_limits_and_gzip() {
    let big = || {
        // 6 MiB of FP32: over gRPC's usual 4 MiB default.
        let n = 6 * 1024 * 1024 / 4;
        InferenceRequest::new(vec![Tensor::new("x", vec![n], vec![0.5f32; n]).unwrap()])
    };
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));

    // Default limit: large payloads pass.
    let s = TestServer::start_ready(dir.path()).await;
    let mut c = s.grpc().await;
    let reply = c
        .model_infer(encode_infer_request("echo", None, big(), true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.raw_output_contents[0].len(), 6 * 1024 * 1024);
    // gzip both ways.
    let mut gz = s
        .grpc()
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let reply = gz
        .model_infer(encode_infer_request("echo", None, big(), true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.raw_output_contents[0].len(), 6 * 1024 * 1024);
    s.stop().await;

    // An explicit limit is enforced, with a clear status.
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.grpc_max_message_length = Some(1024 * 1024);
    })
    .await;
    s.wait_started().await;
    let mut c = s.grpc().await;
    let e = c
        .model_infer(encode_infer_request("echo", None, big(), true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    s.stop().await;

    // -1 (ModelMesh's setting) lifts it.
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.grpc_max_message_length = Some(-1);
    })
    .await;
    s.wait_started().await;
    let mut c = s.grpc().await;
    c.model_infer(encode_infer_request("echo", None, big(), true))
        .await
        .unwrap();
    s.stop().await;
}
