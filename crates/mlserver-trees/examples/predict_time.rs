//! Times predictions of a model file on random rows: `cargo run --release -p
//! mlserver-trees --example predict_time -- MODEL [ROWS] [REPEATS]
//! [one|lockstep]`. An XGBoost JSON/UBJSON file or a LightGBM text model
//! (content starting with `tree`) is timed walking one tree at a time and
//! in lockstep (or only the one named).
//!
//! Rows are pseudo-random in [-2, 2), or, with `PREDICT_TIME_ROWS=FILE`,
//! the numbers of FILE (anything between them ignored: a V2 request body
//! will do), repeated as needed: real rows walk deeper than random ones.
//! Each call predicts the next of 16 batches, the rows in a different order:
//! the same rows every time would let the branch predictor learn the walk,
//! which a server's mixed requests do not allow.

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
    let mut next: Box<dyn FnMut() -> f64> = Box::new(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    });
    if let Some(file) = std::env::var_os("PREDICT_TIME_ROWS") {
        let text = std::fs::read_to_string(file).expect("a readable rows file");
        let numbers: Vec<f64> = text
            .split(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .filter_map(|t| t.parse().ok())
            .collect();
        assert!(!numbers.is_empty(), "no numbers in the rows file");
        let mut k = 0;
        next = Box::new(move || {
            k += 1;
            numbers[(k - 1) % numbers.len()]
        });
    }
    // 16 batches of `rows` rows: row j of batch b is row (7j + 13b) of the
    // source rows, mod their number.
    let batches = |width: usize, next: &mut dyn FnMut() -> f64| -> Vec<Vec<f64>> {
        let source: Vec<f64> = (0..rows * 16 * width).map(|_| next()).collect();
        (0..16)
            .map(|b| {
                (0..rows)
                    .flat_map(|j| {
                        let r = (7 * j + 13 * b) % (rows * 16).max(1);
                        source[r * width..(r + 1) * width].iter().copied()
                    })
                    .collect()
            })
            .collect()
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
        let data = batches(model.num_features(), &mut next);
        for &one in &modes {
            let options = mlserver_trees::lightgbm::PredictOptions {
                one_tree_at_a_time: one,
                ..Default::default()
            };
            let mut call = 0;
            time(
                if one {
                    "one tree at a time"
                } else {
                    "lockstep"
                },
                Box::new(|| {
                    call += 1;
                    let batch = &data[call % 16];
                    model.predict_with(batch, rows, &options).expect("predicts")[0]
                }),
            );
        }
    } else {
        let model = mlserver_trees::Model::from_bytes(&bytes).expect("loads");
        let data: Vec<Vec<f32>> = batches(model.num_features(), &mut next)
            .into_iter()
            .map(|b| b.into_iter().map(|x| x as f32).collect())
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
            let mut call = 0;
            time(
                label,
                Box::new(|| {
                    call += 1;
                    let batch = &data[call % 16];
                    f64::from(model.predict_with(batch, rows, &options).expect("predicts")[0])
                }),
            );
        }
    }
}
