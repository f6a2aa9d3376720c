//! Every seed and every input that once crashed, through its target: the
//! CI's fuzz smoke, with no instrumented build (the fuzzing itself is
//! `cargo xtask fuzz`).

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(folder: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(folder).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn seeds_and_regressions_pass_every_target() {
    for target in mlserver_fuzz::TARGETS {
        let seeds = inputs("corpus", target.name);
        assert!(!seeds.is_empty(), "no seed corpus for {}", target.name);
        for path in seeds.iter().chain(&inputs("regressions", target.name)) {
            let data = std::fs::read(path).unwrap();
            // A panic names the input that caused it.
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(
                outcome.is_ok(),
                "{} panicked on {}",
                target.name,
                path.display()
            );
        }
    }
}

/// Every target is a binary of the fuzz crate.
#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for target in mlserver_fuzz::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "fuzz/Cargo.toml has no [[bin]] {}",
            target.name
        );
        assert!(fuzz_dir()
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name))
            .is_file());
    }
}

/// Writes the gRPC seeds (protobuf is not written by hand):
/// `cargo test -p mlserver-fuzz --test corpora -- --ignored write_grpc_seeds`.
#[test]
#[ignore = "writes fuzz/corpus/grpc_request; run by hand"]
fn write_grpc_seeds() {
    use mlserver_types::{InferenceRequest, Tensor};
    use prost::Message;
    let dir = fuzz_dir().join("corpus/grpc_request");
    std::fs::create_dir_all(&dir).unwrap();
    let requests = [
        InferenceRequest::new(vec![
            Tensor::new("x", vec![2, 2], vec![1f32, 2., 3., 4.]).unwrap()
        ]),
        InferenceRequest::new(vec![
            Tensor::new("a", vec![3], vec![1i64, -2, 3]).unwrap(),
            Tensor::new("b", vec![2], vec![true, false]).unwrap(),
        ]),
        InferenceRequest::new(vec![Tensor::new(
            "s",
            vec![2],
            vec![b"hello".to_vec(), b"world".to_vec()],
        )
        .unwrap()]),
        InferenceRequest::new(vec![Tensor::new("u", vec![2], vec![7u8, 255]).unwrap()]),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        for raw in [false, true] {
            let message = mlserver_proto::convert::encode_infer_request(
                "model",
                Some("1"),
                request.clone(),
                raw,
            );
            std::fs::write(
                dir.join(format!("seed{i}{}.pb", if raw { "-raw" } else { "" })),
                message.encode_to_vec(),
            )
            .unwrap();
        }
    }
}
