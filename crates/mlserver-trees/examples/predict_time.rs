//! Times predictions of a model file on random rows: `cargo run --release -p
//! mlserver-trees --example predict_time -- MODEL [ROWS] [REPEATS]
//! [one|lockstep]`. An XGBoost JSON/UBJSON file is timed walking one tree
//! at a time and in lockstep (or only the one named); a LightGBM text model
//! (content starting with `tree`) one tree at a time, its only walk.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("a model file");
    let rows: usize = args.next().map_or(64, |a| a.parse().expect("ROWS"));
    let repeats: usize = args.next().map_or(2000, |a| a.parse().expect("REPEATS"));
    // `one` or `lockstep` times only that walk.
    let only = args.next();
    let modes: Vec<bool> = [true, false]
        .into_iter()
        .filter(|one| match only.as_deref() {
            Some("one") => *one,
            Some("lockstep") => !*one,
            _ => true,
        })
        .collect();
    let bytes = std::fs::read(&path).expect("readable");
    // Deterministic pseudo-random features in [-2, 2).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    };
    let time = |what: &str, mut f: Box<dyn FnMut() -> f64 + '_>| {
        let mut sink = f();
        let t = Instant::now();
        for _ in 0..repeats {
            sink += f();
        }
        let per = t.elapsed() / repeats as u32;
        println!("{what}: {per:?} per {rows} rows ({sink:.3})");
    };
    if bytes.starts_with(b"tree") {
        let model = mlserver_trees::lightgbm::Model::from_text(&bytes).expect("loads");
        let data: Vec<f64> = (0..rows * model.num_features()).map(|_| next()).collect();
        time(
            "one tree at a time",
            Box::new(|| model.predict(&data, rows).expect("predicts")[0]),
        );
    } else {
        let model = mlserver_trees::Model::from_bytes(&bytes).expect("loads");
        let data: Vec<f32> = (0..rows * model.num_features())
            .map(|_| next() as f32)
            .collect();
        for &one in &modes {
            let options = mlserver_trees::PredictOptions {
                one_tree_at_a_time: one,
                ..Default::default()
            };
            let label = if one {
                "one tree at a time"
            } else {
                "lockstep"
            };
            time(
                label,
                Box::new(|| {
                    f64::from(model.predict_with(&data, rows, &options).expect("predicts")[0])
                }),
            );
        }
    }
}
