use super::*;
use mlserver_types::{bf16, f16, ModelState};
use proptest::collection::vec;
use proptest::prelude::*;

fn one_of_each() -> Vec<Tensor> {
    let t = |name: &str, data: TensorData| Tensor::new(name, vec![data.len()], data).unwrap();
    vec![
        t("bool", TensorData::Bool(vec![true, false])),
        t("u8", TensorData::Uint8(vec![0, 255])),
        t("u16", TensorData::Uint16(vec![0, u16::MAX])),
        t("u32", TensorData::Uint32(vec![0, u32::MAX])),
        t("u64", TensorData::Uint64(vec![0, u64::MAX])),
        t("i8", TensorData::Int8(vec![i8::MIN, i8::MAX])),
        t("i16", TensorData::Int16(vec![i16::MIN, i16::MAX])),
        t("i32", TensorData::Int32(vec![i32::MIN, i32::MAX])),
        t("i64", TensorData::Int64(vec![i64::MIN, i64::MAX])),
        t("fp32", TensorData::Fp32(vec![1.5, -0.0])),
        t("fp64", TensorData::Fp64(vec![0.1, 1e300])),
        t(
            "bytes",
            TensorData::Bytes(vec![b"ab".to_vec(), vec![], vec![0xff]]),
        ),
    ]
}

#[test]
fn every_typed_datatype_round_trips_typed_and_raw() {
    for raw in [false, true] {
        let request = InferenceRequest::new(one_of_each());
        let wire = encode_infer_request("m", Some("2"), request.clone(), raw);
        assert_eq!(wire.raw_input_contents.len(), if raw { 12 } else { 0 });
        let back = decode_infer_request(wire).unwrap();
        assert_eq!(back.raw, raw);
        assert_eq!(back.model_name, "m");
        assert_eq!(back.model_version.as_deref(), Some("2"));
        assert_eq!(back.request.inputs, request.inputs);
    }
}

#[test]
fn half_floats_force_raw() {
    let x = Tensor::new("h", vec![2], vec![f16::from_f32(1.5), f16::from_f32(-2.0)]).unwrap();
    let b = Tensor::new("b", vec![1], vec![bf16::from_f32(3.0)]).unwrap();
    let wire = encode_infer_request(
        "m",
        None,
        InferenceRequest::new(vec![x.clone(), b.clone()]),
        false,
    );
    assert_eq!(wire.raw_input_contents.len(), 2);
    let back = decode_infer_request(wire).unwrap();
    assert_eq!(back.request.inputs, vec![x.clone(), b]);

    let response = InferenceResponse {
        model_name: "m".into(),
        model_version: None,
        id: None,
        parameters: None,
        outputs: vec![x],
        transport_headers: Default::default(),
        json: None,
    };
    let wire = encode_infer_response(response.clone(), false);
    assert_eq!(wire.raw_output_contents.len(), 1);
    assert_eq!(decode_infer_response(wire).unwrap(), response);
}

#[test]
fn raw_layout_is_little_endian_and_bytes_are_length_prefixed() {
    let request = InferenceRequest::new(vec![
        Tensor::new("i", vec![2], vec![1i32, -2]).unwrap(),
        Tensor::new("s", vec![2], TensorData::from(vec!["ab", "c"])).unwrap(),
    ]);
    let wire = encode_infer_request("m", None, request, true);
    assert_eq!(
        &wire.raw_input_contents[0][..],
        &[1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]
    );
    assert_eq!(&wire.raw_input_contents[1][..], b"\x02\0\0\0ab\x01\0\0\0c");
}

fn typed_input(
    name: &str,
    datatype: &str,
    shape: Vec<i64>,
    c: InferTensorContents,
) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        parameters: HashMap::new(),
        contents: Some(c),
    }
}

fn request_of(inputs: Vec<InferInputTensor>, raw: Vec<Bytes>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "m".into(),
        inputs,
        raw_input_contents: raw,
        ..Default::default()
    }
}

fn error_of(request: ModelInferRequest) -> String {
    decode_infer_request(request).unwrap_err().to_string()
}

#[test]
fn rejects_what_does_not_fit() {
    let fp32 = |v: Vec<f32>| InferTensorContents {
        fp32_contents: v,
        ..Default::default()
    };
    // Element count against shape.
    let e = error_of(request_of(
        vec![typed_input("x", "FP32", vec![2, 2], fp32(vec![1.0; 3]))],
        vec![],
    ));
    assert!(e.contains("needs 4 elements"), "{e}");
    // Negative dimension.
    let e = error_of(request_of(
        vec![typed_input("x", "FP32", vec![-1], fp32(vec![1.0]))],
        vec![],
    ));
    assert!(e.contains("negative"), "{e}");
    // Unknown datatype.
    let e = error_of(request_of(
        vec![typed_input("x", "FP8", vec![1], fp32(vec![1.0]))],
        vec![],
    ));
    assert!(e.contains("FP8"), "{e}");
    // Wrong contents field for the datatype.
    let e = error_of(request_of(
        vec![typed_input("x", "INT32", vec![1], fp32(vec![1.0]))],
        vec![],
    ));
    assert!(
        e.contains("int_contents") && e.contains("fp32_contents"),
        "{e}"
    );
    // Narrow integers out of range.
    let ints = InferTensorContents {
        int_contents: vec![300],
        ..Default::default()
    };
    let e = error_of(request_of(
        vec![typed_input("x", "INT8", vec![1], ints)],
        vec![],
    ));
    assert!(e.contains("out of range"), "{e}");
    // FP16 only raw.
    let e = error_of(request_of(
        vec![typed_input("x", "FP16", vec![1], fp32(vec![1.0]))],
        vec![],
    ));
    assert!(e.contains("raw"), "{e}");
    // Raw: one entry per input.
    let empty = InferTensorContents::default();
    let e = error_of(request_of(
        vec![
            typed_input("a", "INT32", vec![1], empty.clone()),
            typed_input("b", "INT32", vec![1], empty.clone()),
        ],
        vec![Bytes::from_static(&[0; 4])],
    ));
    assert!(e.contains("one entry per input"), "{e}");
    // Raw: size against shape x datatype.
    let e = error_of(request_of(
        vec![typed_input("a", "INT32", vec![2], empty.clone())],
        vec![Bytes::from_static(&[0; 4])],
    ));
    assert!(e.contains("4 bytes"), "{e}");
    // Raw and typed mixed.
    let e = error_of(request_of(
        vec![
            typed_input("a", "INT32", vec![1], empty),
            typed_input("b", "FP32", vec![1], fp32(vec![1.0])),
        ],
        vec![Bytes::from_static(&[0; 4]), Bytes::from_static(&[0; 4])],
    ));
    assert!(e.contains("mixed"), "{e}");
    // Raw BYTES with a truncated length prefix.
    let e = error_of(request_of(
        vec![typed_input(
            "s",
            "BYTES",
            vec![1],
            InferTensorContents::default(),
        )],
        vec![Bytes::from_static(&[5, 0, 0, 0, b'a'])],
    ));
    assert!(e.contains("BYTES"), "{e}");
}

#[test]
fn parameters_keep_their_types() {
    let mut p = Parameters::new();
    p.insert("b", true);
    p.insert("i", -3);
    p.insert("u", u64::MAX);
    p.insert("d", 0.25);
    p.insert("s", "text");
    p.insert("nested", serde_json::json!({"a": [1, 2]}));
    let wire = parameters_to_proto(Some(p));
    assert_eq!(
        wire["i"].parameter_choice,
        Some(ParameterChoice::Int64Param(-3))
    );
    assert_eq!(
        wire["u"].parameter_choice,
        Some(ParameterChoice::Uint64Param(u64::MAX))
    );
    assert_eq!(
        wire["d"].parameter_choice,
        Some(ParameterChoice::DoubleParam(0.25))
    );
    assert_eq!(
        wire["nested"].parameter_choice,
        Some(ParameterChoice::StringParam(r#"{"a":[1,2]}"#.into()))
    );
    let back = parameters_from_proto(wire).unwrap().unwrap();
    assert_eq!(back.get("b"), Some(&Value::Bool(true)));
    assert_eq!(back.get("i"), Some(&Value::from(-3)));
    assert_eq!(back.get("u"), Some(&Value::from(u64::MAX)));
    assert_eq!(back.get("d"), Some(&Value::from(0.25)));
    assert_eq!(back.get("s"), Some(&Value::from("text")));

    let nan = HashMap::from([(
        "x".to_owned(),
        InferParameter {
            parameter_choice: Some(ParameterChoice::DoubleParam(f64::NAN)),
        },
    )]);
    assert!(parameters_from_proto(nan).is_err());
}

#[test]
fn empty_strings_mean_unset() {
    let back = decode_infer_request(request_of(vec![], vec![])).unwrap();
    assert_eq!(back.model_version, None);
    assert_eq!(back.request.id, None);
    assert_eq!(back.request.outputs, None);
}

#[test]
fn index_and_metadata_convert() {
    let item = index_item_to_proto(RepositoryIndexItem {
        name: "m".into(),
        version: None,
        state: ModelState::Unavailable,
        reason: "boom".into(),
    });
    assert_eq!(
        (
            item.state.as_str(),
            item.version.as_str(),
            item.reason.as_str()
        ),
        ("UNAVAILABLE", "", "boom")
    );
    let meta = metadata_to_proto(MetadataModelResponse {
        name: "m".into(),
        versions: vec!["1".into()],
        platform: "p".into(),
        inputs: vec![MetadataTensor::new("x", Datatype::Fp32, vec![-1, 3])],
        outputs: vec![],
        parameters: None,
    });
    assert_eq!(meta.inputs[0].shape, vec![-1, 3]);
    assert_eq!(meta.inputs[0].datatype, "FP32");
}

fn arb_data() -> impl Strategy<Value = TensorData> {
    prop_oneof![
        vec(any::<bool>(), 0..8).prop_map(TensorData::Bool),
        vec(any::<u8>(), 0..8).prop_map(TensorData::Uint8),
        vec(any::<u16>(), 0..8).prop_map(TensorData::Uint16),
        vec(any::<u64>(), 0..8).prop_map(TensorData::Uint64),
        vec(any::<i8>(), 0..8).prop_map(TensorData::Int8),
        vec(any::<i16>(), 0..8).prop_map(TensorData::Int16),
        vec(any::<i64>(), 0..8).prop_map(TensorData::Int64),
        vec(
            any::<f32>().prop_filter("NaN != NaN", |x| !x.is_nan()),
            0..8
        )
        .prop_map(TensorData::Fp32),
        vec(
            any::<f64>().prop_filter("NaN != NaN", |x| !x.is_nan()),
            0..8
        )
        .prop_map(TensorData::Fp64),
        vec(
            any::<u16>()
                .prop_map(f16::from_bits)
                .prop_filter("NaN", |x| !x.is_nan()),
            0..8
        )
        .prop_map(TensorData::Fp16),
        vec(vec(any::<u8>(), 0..5), 0..5).prop_map(TensorData::Bytes),
    ]
}

proptest! {
    #[test]
    fn responses_round_trip(datas in vec(arb_data(), 0..4), raw in any::<bool>()) {
        let outputs: Vec<Tensor> = datas
            .into_iter()
            .enumerate()
            .map(|(i, d)| Tensor::new(format!("o{i}"), vec![d.len()], d).unwrap())
            .collect();
        let response = InferenceResponse {
            model_name: "m".into(),
            model_version: Some("1".into()),
            id: Some("id".into()),
            parameters: None,
            outputs,
            transport_headers: Default::default(),
            json: None,
        };
        let back = decode_infer_response(encode_infer_response(response.clone(), raw)).unwrap();
        prop_assert_eq!(back, response);
    }
}
