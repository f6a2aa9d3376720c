//! The V2 REST API end to end: the real server on a free loopback port,
//! spoken to over HTTP with reqwest.

use std::io::{Read, Write};

use mlserver_tests::{examples_models, runtimes::test_runtimes, ModelsDir, TestServer};
use mlserver_types::binary::{self, HEADER_CONTENT_LENGTH};
use mlserver_types::{InferenceRequest, RequestOutput, Tensor};
use serde_json::{json, Value};

async fn body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    };
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metadata() {
    let s = TestServer::start_ready(&examples_models()).await;
    assert_eq!(
        body(s.get("/v2/health/live").await).await,
        (200, json!({"live": true}))
    );
    assert_eq!(
        body(s.get("/v2/health/ready").await).await,
        (200, json!({"ready": true}))
    );

    let (status, meta) = body(s.get("/v2").await).await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "mlserver");
    assert!(meta["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(meta["extensions"]
        .as_array()
        .unwrap()
        .contains(&json!("binary_tensor_data")));

    let (status, meta) = body(s.get("/v2/models/sum-model").await).await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "sum-model");
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "input", "datatype": "FP32", "shape": [-1, -1]})
    );
    let (status, meta) = body(s.get("/v2/models/text-model/versions/1").await).await;
    assert_eq!(status, 200);
    assert_eq!(meta["parameters"], json!({}));
    assert_eq!(meta["inputs"][0]["parameters"]["content_type"], "str");

    assert_eq!(
        body(s.get("/v2/models/sum-model/ready").await).await,
        (200, json!({"name": "sum-model", "ready": true}))
    );
    assert_eq!(
        body(s.get("/v2/models/text-model/versions/2/ready").await)
            .await
            .0,
        200
    );
    assert_eq!(
        body(s.get("/v2/models/nope/ready").await).await,
        (404, json!({"error": "Model nope not found"}))
    );
    assert_eq!(
        body(s.get("/v2/models/nope").await).await,
        (404, json!({"error": "Model nope not found"}))
    );
    assert_eq!(
        body(s.get("/v2/models/text-model/versions/9").await).await,
        (
            404,
            json!({"error": "Model text-model with version 9 not found"})
        )
    );
    assert_eq!(
        body(s.get("/v2/models/text-model/versions/9/ready").await)
            .await
            .1["error"],
        "Model text-model with version 9 not found"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_json_every_datatype_nested_and_flat() {
    let s = TestServer::start_ready(&examples_models()).await;
    let cases = [
        ("BOOL", json!([[true, false], [false, true]])),
        ("UINT8", json!([[0, 255], [1, 2]])),
        ("UINT16", json!([[0, 65535], [1, 2]])),
        ("UINT32", json!([[0, 4294967295u64], [1, 2]])),
        ("UINT64", json!([[0, 18446744073709551615u64], [1, 2]])),
        ("INT8", json!([[-128, 127], [0, 1]])),
        ("INT16", json!([[-32768, 32767], [0, 1]])),
        ("INT32", json!([[-2147483648i64, 2147483647], [0, 1]])),
        (
            "INT64",
            json!([[-9223372036854775808i64, 9223372036854775807i64], [0, 1]]),
        ),
        ("FP16", json!([[0.5, -2.0], [1.0, 65504.0]])),
        ("FP32", json!([[0.5, -2.25], [1e10, 3.0]])),
        ("FP64", json!([[0.1, -2.25], [1e300, 3.0]])),
        ("BYTES", json!([["a", "bé"], ["", "zzz"]])),
    ];
    for (datatype, nested) in cases {
        let flat: Vec<Value> = nested
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().clone())
            .collect();
        for data in [nested.clone(), Value::Array(flat.clone())] {
            let request = json!({"id": "x", "inputs": [{"name": "input", "shape": [2, 2], "datatype": datatype, "data": data}]});
            let (status, response) =
                body(s.post_json("/v2/models/echo-model/infer", &request).await).await;
            assert_eq!(status, 200, "{datatype}: {response}");
            assert_eq!(response["model_name"], "echo-model");
            assert_eq!(response["id"], "x");
            let out = &response["outputs"][0];
            assert_eq!(out["name"], "output");
            assert_eq!(out["datatype"], datatype);
            assert_eq!(out["shape"], json!([2, 2]));
            if datatype == "FP32" {
                let got: Vec<f64> = out["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                assert_eq!(got, vec![0.5, -2.25, 1e10, 3.0]);
            } else {
                assert_eq!(out["data"], Value::Array(flat.clone()), "{datatype}");
            }
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_and_string_models() {
    let s = TestServer::start_ready(&examples_models()).await;
    let (status, r) = body(
        s.post_json(
            "/v2/models/sum-model/infer",
            &json!({"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([6.0, 15.0]));
    assert_eq!(r["outputs"][0]["shape"], json!([2, 1]));
    assert!(
        r.get("model_version").is_none(),
        "unversioned models omit model_version: {r}"
    );
    // A generated id when the request has none.
    assert_eq!(r["id"].as_str().unwrap().len(), 36);

    // text-model: default version is the newest (2, reverse).
    let text = json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["abc", "héllo"]}]});
    let (_, r) = body(s.post_json("/v2/models/text-model/infer", &text).await).await;
    assert_eq!(r["model_version"], "2");
    assert_eq!(r["outputs"][0]["data"], json!(["cba", "olléh"]));
    assert_eq!(r["outputs"][1]["data"], json!([3, 5]));
    let (_, r) = body(
        s.post_json("/v2/models/text-model/versions/1/infer", &text)
            .await,
    )
    .await;
    assert_eq!(r["model_version"], "1");
    assert_eq!(r["outputs"][0]["data"], json!(["ABC", "HÉLLO"]));
    assert_eq!(r["outputs"][0]["parameters"]["content_type"], "str");
    // The generate alias.
    let (status, r) = body(
        s.post_json("/v2/models/text-model/versions/1/generate", &text)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(r["outputs"][0]["data"], json!(["ABC", "HÉLLO"]));

    // Output selection.
    let mut selective = text.clone();
    selective["outputs"] = json!([{"name": "length"}]);
    let (_, r) = body(s.post_json("/v2/models/text-model/infer", &selective).await).await;
    assert_eq!(r["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(r["outputs"][0]["name"], "length");
    // An output the model does not produce: MLServer's answer, everything
    // the model gave.
    selective["outputs"] = json!([{"name": "nope"}]);
    let (status, r) = body(s.post_json("/v2/models/text-model/infer", &selective).await).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"].as_array().unwrap().len(), 2, "{r}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_extension_both_directions() {
    let s = TestServer::start_ready(&examples_models()).await;
    let mut request = InferenceRequest::new(vec![Tensor::new(
        "input",
        vec![2, 2],
        vec![1.5f32, 2.0, 3.0, 4.0],
    )
    .unwrap()]);
    request.id = Some("bin".into());
    request.outputs = Some(vec![RequestOutput {
        name: "output".into(),
        parameters: Some([("binary_data", true)].into_iter().collect()),
    }]);
    let encoded = binary::encode_request(&request).unwrap();
    let r = s
        .client
        .post(s.url("/v2/models/sum-model/infer"))
        .header(HEADER_CONTENT_LENGTH, encoded.header_len.unwrap())
        .header("content-type", "application/octet-stream")
        .body(encoded.body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let header_len: usize = r.headers()[HEADER_CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let header: Value = serde_json::from_slice(&bytes[..header_len]).unwrap();
    assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert!(header["outputs"][0].get("data").is_none());
    let response = binary::decode_response(&bytes, Some(header_len)).unwrap();
    assert_eq!(response.outputs[0].as_slice::<f32>().unwrap(), &[3.5, 7.0]);
    assert_eq!(response.id.as_deref(), Some("bin"));

    // Binary in, JSON out (no binary_data_output): a plain JSON response.
    let plain = InferenceRequest::new(vec![
        Tensor::new("input", vec![1, 2], vec![1.0f32, 1.0]).unwrap()
    ]);
    let encoded = binary::encode_request(&plain).unwrap();
    let r = s
        .client
        .post(s.url("/v2/models/sum-model/infer"))
        .header(HEADER_CONTENT_LENGTH, encoded.header_len.unwrap())
        .body(encoded.body)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(HEADER_CONTENT_LENGTH).is_none());
    let (status, v) = body(r).await;
    assert_eq!(
        (status, v["outputs"][0]["data"].clone()),
        (200, json!([2.0]))
    );

    // JSON in, binary out through the request-level default.
    let req = json!({"parameters": {"binary_data_output": true},
                     "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["ab"]}]});
    let r = s
        .post_json("/v2/models/text-model/versions/1/infer", &req)
        .await;
    let header_len: usize = r.headers()[HEADER_CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let response = binary::decode_response(&bytes, Some(header_len)).unwrap();
    assert_eq!(response.outputs[0].data, vec!["AB"].into());
    assert_eq!(response.outputs[1].as_slice::<i64>().unwrap(), &[2]);

    // BF16 travels only in binary, and the echo model returns it intact.
    let bf = InferenceRequest::new(vec![Tensor::new(
        "input",
        vec![2],
        vec![
            mlserver_types::bf16::from_f32(1.5),
            mlserver_types::bf16::from_f32(-3.0),
        ],
    )
    .unwrap()]);
    let mut bf_req = bf.clone();
    bf_req.parameters_mut().insert("binary_data_output", true);
    let encoded = binary::encode_request(&bf_req).unwrap();
    let r = s
        .client
        .post(s.url("/v2/models/echo-model/infer"))
        .header(HEADER_CONTENT_LENGTH, encoded.header_len.unwrap())
        .body(encoded.body)
        .send()
        .await
        .unwrap();
    let header_len: usize = r.headers()[HEADER_CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let response = binary::decode_response(&r.bytes().await.unwrap(), Some(header_len)).unwrap();
    assert_eq!(response.outputs[0].data, bf.inputs[0].data);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_binary_body_for_single_input_models() {
    let dir = ModelsDir::new();
    dir.model(
        "rows",
        json!({"implementation": "sum", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}]}),
    );
    dir.model("two-var", json!({"implementation": "sum", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}]}));
    let s = TestServer::start_ready(dir.path()).await;
    let raw: Vec<u8> = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let r = s
        .client
        .post(s.url("/v2/models/rows/infer"))
        .header(HEADER_CONTENT_LENGTH, "0")
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let header_len: usize = r.headers()[HEADER_CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let response = binary::decode_response(&r.bytes().await.unwrap(), Some(header_len)).unwrap();
    assert_eq!(response.outputs[0].as_slice::<f32>().unwrap(), &[6.0, 15.0]);

    let r = s
        .client
        .post(s.url("/v2/models/two-var/infer"))
        .header(HEADER_CONTENT_LENGTH, "0")
        .body(raw)
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("more than one variable dimension"),
        "{v}"
    );
    s.stop().await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_requests_and_responses() {
    let s = TestServer::start_ready(&examples_models()).await;
    let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let request =
        json!({"inputs": [{"name": "input", "shape": [1000], "datatype": "FP32", "data": data}]});
    let r = s
        .client
        .post(s.url("/v2/models/echo-model/infer"))
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip")
        .header("content-type", "application/json")
        .body(gzip(request.to_string().as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let compressed = r.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["outputs"][0]["data"].as_array().unwrap().len(), 1000);

    // Without Accept-Encoding: plain.
    let r = s.post_json("/v2/models/echo-model/infer", &request).await;
    assert!(r.headers().get("content-encoding").is_none());

    // A corrupt gzip body is a 400, not a crash.
    let r = s
        .client
        .post(s.url("/v2/models/echo-model/infer"))
        .header("content-encoding", "gzip")
        .body(b"\x1f\x8bnot really gzip".to_vec())
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("gzip"), "{v}");
    let r = s
        .client
        .post(s.url("/v2/models/echo-model/infer"))
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_disabled_by_settings() {
    let s = TestServer::start_with(
        &examples_models(),
        mlserver_tests::runtimes::test_runtimes(),
        |st| {
            st.gzip_enabled = false;
        },
    )
    .await;
    s.wait_started().await;
    let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let request =
        json!({"inputs": [{"name": "input", "shape": [1000], "datatype": "FP32", "data": data}]});
    let r = s
        .client
        .post(s.url("/v2/models/echo-model/infer"))
        .header("accept-encoding", "gzip")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let dir = ModelsDir::new();
    dir.model("sum", json!({"implementation": "sum", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}]}));
    // Without strict_inputs, a request that does not match the declared
    // inputs reaches the model as sent, as in MLServer.
    let loose = TestServer::start_ready(dir.path()).await;
    let (status, v) = body(
        loose
            .post_json(
                "/v2/models/sum/infer",
                &json!({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, &v["outputs"][0]["data"]),
        (200, &json!([10.0])),
        "{v}"
    );
    loose.stop().await;
    // With it, they are refused.
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.strict_inputs = true;
    })
    .await;
    s.wait_started().await;
    let infer = |body: &'static str| {
        s.client
            .post(s.url("/v2/models/sum/infer"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: &[(&str, u16, &str)] = &[
        ("{not json", 400, "invalid inference request"),
        (r#"{"inputs": 5}"#, 400, "invalid inference request"),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2]}]}"#,
            400,
            "needs 3 elements",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FLOAT","data":[1,2,3]}]}"#,
            400,
            "unknown datatype 'FLOAT'",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":["a","b","c"]}]}"#,
            400,
            "expected a number",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"INT8","data":[1,2,300]}]}"#,
            400,
            "out of range for INT8",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}"#,
            400,
            "expects FP32",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
            400,
            "expects [-1, 3]",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[-1,3],"datatype":"FP32","data":[1,2,3]}]}"#,
            400,
            "invalid shape",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32"}]}"#,
            400,
            "has no `data`",
        ),
        (
            r#"{"inputs":[{"name":"input","datatype":"FP32","data":[1]}]}"#,
            400,
            "missing field `shape`",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"BF16","data":[1,2,3]}]}"#,
            400,
            "binary tensor data extension",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"BOOL","data":[true,false,true]}]}"#,
            400,
            "expects FP32",
        ),
    ];
    for (request, status, fragment) in cases {
        let (got, v) = body(infer(request).await.unwrap()).await;
        assert_eq!(got, *status, "{request} -> {v}");
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field for {request}: {v}"));
        assert!(
            msg.contains(fragment),
            "{request}: expected '{fragment}' in '{msg}'"
        );
    }

    // Binary framing errors.
    let binary_case = |header_len: &'static str, body: Vec<u8>| {
        s.client
            .post(s.url("/v2/models/sum/infer"))
            .header(HEADER_CONTENT_LENGTH, header_len)
            .body(body)
            .send()
    };
    let header = br#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}]}"#;
    let mut short = header.to_vec();
    short.extend_from_slice(&[0; 8]);
    let len: &'static str = Box::leak(header.len().to_string().into_boxed_str());
    let (status, v) = body(binary_case(len, short).await.unwrap()).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("remain"), "{v}");
    let (status, _) = body(binary_case("abc", header.to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);
    let (status, _) = body(binary_case("100000", header.to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);

    // Routing errors are JSON too.
    let (status, v) = body(s.get("/v2/nothing/here").await).await;
    assert_eq!(status, 404);
    assert!(v["error"].as_str().is_some());
    let (status, v) = body(s.get("/v2/models/sum/infer").await).await;
    assert_eq!(status, 405);
    assert!(v["error"].as_str().is_some());
    // Unknown model beats a bad body.
    let r = s
        .client
        .post(s.url("/v2/models/ghost/infer"))
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(r).await,
        (404, json!({"error": "Model ghost not found"}))
    );

    // The server is still fine.
    let (status, _) = body(
        infer(r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));
    let env = std::sync::Arc::new(mlserver_settings::EnvSource::empty());
    let settings = mlserver_settings::load_settings(dir.path(), &env).unwrap();
    let server =
        mlserver_server::Server::new(settings, mlserver_tests::runtimes::test_runtimes(), env)
            .unwrap()
            .with_max_body_bytes(1024);
    let s = TestServer::serve(server).await;
    s.wait_started().await;
    let big = json!({"inputs": [{"name": "x", "shape": [1000], "datatype": "FP32", "data": vec![1.0f32; 1000]}]});
    let (status, v) = body(s.post_json("/v2/models/echo/infer", &big).await).await;
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("limit of 1024 bytes"),
        "{v}"
    );
    // A gzip bomb: small on the wire, large inflated.
    let spaces = gzip(&vec![b' '; 100_000]);
    assert!(spaces.len() < 1024);
    let r = s
        .client
        .post(s.url("/v2/models/echo/infer"))
        .header("content-encoding", "gzip")
        .body(spaces)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A Content-Length above the limit: 413 from the head alone, the body
    // never sent (the client waits for the answer first).
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::io::AsyncReadExt::read(&mut stream, &mut head),
    )
    .await
    .expect("answered before the body")
    .unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        head.contains("(Content-Length) exceeds the limit of 1024 bytes"),
        "{head}"
    );
    // Small requests still work.
    let small = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]});
    assert_eq!(
        s.post_json("/v2/models/echo/infer", &small).await.status(),
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_reach_the_model_and_come_back() {
    let dir = ModelsDir::new();
    dir.model("headers", json!({"implementation": "test.Headers"}));
    let s = TestServer::start_ready(dir.path()).await;
    let r = s
        .client
        .post(s.url("/v2/models/headers/infer"))
        .header("x-request-tag", "abc")
        .json(&json!({"parameters": {"headers": {"spoofed": "1"}},
                      "inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-model-header"], "yes");
    let (status, v) = body(r).await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(v["outputs"][0]["data"][0].as_str().unwrap()).unwrap();
    assert_eq!(seen["x-request-tag"], "abc");
    assert!(seen.get("spoofed").is_none());
    assert_eq!(
        v["parameters"],
        json!({}),
        "headers are not left in the body (the parameters stay, as MLServer's do): {v}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_runtime_fails_only_its_request() {
    let dir = ModelsDir::new();
    dir.model("panicky", json!({"implementation": "test.Panicky"}));
    dir.model("liar", json!({"implementation": "test.Lying"}));
    dir.model("echo", json!({"implementation": "echo"}));
    let s = TestServer::start_ready(dir.path()).await;
    let req =
        |x: f32| json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [x]}]});
    let (status, v) = body(s.post_json("/v2/models/panicky/infer", &req(-1.0)).await).await;
    assert_eq!(status, 500);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("negative input is fatal"),
        "{v}"
    );
    let (status, _) = body(s.post_json("/v2/models/panicky/infer", &req(1.0)).await).await;
    assert_eq!(status, 200);
    let (status, _) = body(s.post_json("/v2/models/echo/infer", &req(1.0)).await).await;
    assert_eq!(status, 200);
    let (status, v) = body(s.post_json("/v2/models/liar/infer", &req(1.0)).await).await;
    assert_eq!(status, 500);
    assert!(
        v["error"].as_str().unwrap().contains("invalid output"),
        "{v}"
    );
    assert_eq!(body(s.get("/v2/health/ready").await).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let dir = ModelsDir::new();
    dir.model(
        "slow",
        json!({"implementation": "test.Slow", "parameters": {"extra": {"predict_ms": 500}}}),
    );
    let s = TestServer::start_ready(dir.path()).await;
    let client = s.client.clone();
    let url = s.url("/v2/models/slow/infer");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(
                &json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}),
            )
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let addr = s.addr;
    s.stop().await;
    let r = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(r.status(), 200);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}

/// MLServer's `root_path` (a proxy serving the API under a prefix): every
/// route answers under it, and still at the root, as Starlette routes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_path_serves_every_route_under_its_prefix() {
    let s = TestServer::start_with(&examples_models(), test_runtimes(), |settings| {
        settings.root_path = "/seldon/ns/model/".into();
    })
    .await;
    s.wait_started().await;
    let request = json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    for prefix in ["/seldon/ns/model", ""] {
        assert_eq!(
            s.get(&format!("{prefix}/v2/health/ready")).await.status(),
            200,
            "{prefix}"
        );
        let (status, v) = body(
            s.post_json(&format!("{prefix}/v2/models/sum-model/infer"), &request)
                .await,
        )
        .await;
        assert_eq!(
            (status, &v["outputs"][0]["data"]),
            (200, &json!([6.0])),
            "{prefix}: {v}"
        );
    }
    assert_eq!(s.get("/elsewhere/v2/health/ready").await.status(), 404);
    s.stop().await;
}

/// Custom endpoints of a Rust runtime: served while the model is loaded,
/// gone with it, and refused at load when they clash with the V2 API or
/// another model's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_endpoints_live_and_die_with_their_model() {
    let dir = ModelsDir::new();
    dir.model(
        "greeter",
        json!({"implementation": "test.CustomEndpoints",
               "parameters": {"extra": {"routes": [["POST", "/echo"]]}}}),
    );
    // Takes /hello/{who} too: its load fails, the first keeps it.
    dir.model("copycat", json!({"implementation": "test.CustomEndpoints"}));
    dir.model(
        "intruder",
        json!({"implementation": "test.CustomEndpoints",
               "parameters": {"extra": {"routes": [["POST", "/v2/models/{m}/infer"]]}}}),
    );
    let s = TestServer::start(dir.path()).await;
    s.wait_started().await;
    let index: Value = s.index().await;
    let state = |name: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| {
                (
                    m["state"].as_str().unwrap().to_owned(),
                    m["reason"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap()
    };
    // Loaded concurrently: one of greeter and copycat has /hello/{who}.
    let (greeter, copycat) = (state("greeter"), state("copycat"));
    assert!(
        (greeter.0 == "READY") != (copycat.0 == "READY"),
        "exactly one takes /hello/{{who}}: {greeter:?} {copycat:?}"
    );
    assert!(
        greeter.1.contains("already served") || copycat.1.contains("already served"),
        "{greeter:?} {copycat:?}"
    );
    let intruder = state("intruder");
    assert_eq!(intruder.0, "UNAVAILABLE");
    assert!(
        intruder.1.contains("clashes with the V2 API"),
        "{intruder:?}"
    );

    let (status, v) = body(s.get("/hello/world?x=1").await).await;
    assert_eq!(
        (status, &v["hello"], &v["query"]),
        (200, &json!("world"), &json!("x=1")),
        "{v}"
    );
    if greeter.0 == "READY" {
        let echo = s
            .client
            .post(s.url("/echo"))
            .body("ping")
            .send()
            .await
            .unwrap();
        assert_eq!(echo.headers()["content-type"], "text/plain");
        assert_eq!(echo.text().await.unwrap(), "ping");
    }
    let owner = if greeter.0 == "READY" {
        "greeter"
    } else {
        "copycat"
    };
    let r = s
        .post_json(&format!("/v2/repository/models/{owner}/unload"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.get("/hello/world").await.status(), 404);
    s.stop().await;
}

/// A client sending a request's head a byte at a time (slowloris) is cut
/// off by the header timeout, or, when that is the later, one keep-alive
/// timeout after the connection went idle (a head still arriving is no
/// open request), and a prompt client on the same server is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // (keep-alive, header timeout) in seconds, 0 for none; the cut comes
    // after 2 s in the first (idle, then dropped), 1 s in the others.
    for (keep_alive, header) in [(1.0, 10.0), (30.0, 1.0), (0.0, 1.0)] {
        let s = TestServer::start_with(&examples_models(), test_runtimes(), |settings| {
            settings.http_keep_alive_timeout = keep_alive;
            settings.http_header_timeout = header;
        })
        .await;
        s.wait_started().await;
        let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let started = Instant::now();
        let drip = tokio::spawn(async move {
            let head = b"GET /v2/health/live HTTP/1.1\r\nhost: a\r\nx-slow: ";
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if write.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut answer = Vec::new();
        let read_all = read.read_to_end(&mut answer);
        let cut = tokio::time::timeout(Duration::from_secs(8), read_all).await;
        let elapsed = started.elapsed();
        assert!(
            cut.is_ok(),
            "keep-alive {keep_alive} s, header timeout {header} s: still open after 8 s"
        );
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
            "keep-alive {keep_alive} s, header timeout {header} s: cut after {elapsed:?}"
        );
        assert!(
            !String::from_utf8_lossy(&answer).contains(" 200 "),
            "{answer:?}"
        );
        drip.abort();
        assert_eq!(s.get("/v2/health/live").await.status(), 200);
        s.stop().await;
    }
}

/// The ODH fork's runtime security report, in development mode (no
/// allowlist): `{"mode": "DEVELOPMENT"}` without the list, over REST and
/// gRPC, and the extension in server metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_security_in_development_mode() {
    let s = TestServer::start_ready(&examples_models()).await;
    let (status, v) = body(s.get("/v2/runtimes").await).await;
    assert_eq!((status, v), (200, json!({"mode": "DEVELOPMENT"})));
    let (_, meta) = body(s.get("/v2").await).await;
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("runtime_security")),
        "{meta}"
    );
    let reply = s
        .grpc()
        .await
        .runtime_security(mlserver_proto::inference::RuntimeSecurityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.mode, "DEVELOPMENT");
    assert!(reply.allowed_model_implementations.is_none());
}

/// The ODH fork's readiness settings: `strict_readiness: false` is ready
/// with one model serving beside a failed one (the default is not), and
/// `empty_registry_readiness: false` is not ready with no model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_settings() {
    let dir = ModelsDir::new();
    dir.model("good", json!({"name": "good", "implementation": "sum"}));
    dir.model(
        "bad",
        json!({"name": "bad", "implementation": "test.Broken"}),
    );
    for (strict, status) in [(true, 503), (false, 200)] {
        let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
            settings.strict_readiness = strict;
        })
        .await;
        s.wait_started().await;
        assert_eq!(
            s.get("/v2/health/ready").await.status(),
            status,
            "strict {strict}"
        );
    }
    let empty = ModelsDir::new();
    for (empty_ready, status) in [(true, 200), (false, 503)] {
        let s = TestServer::start_with(empty.path(), test_runtimes(), |settings| {
            settings.empty_registry_readiness = empty_ready;
        })
        .await;
        s.wait_started().await;
        assert_eq!(
            s.get("/v2/health/ready").await.status(),
            status,
            "empty {empty_ready}"
        );
    }
}
