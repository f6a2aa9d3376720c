//! Prediction in the order and precision of LightGBM's `GBDT::PredictRaw`
//! and `GBDT::Predict`: each output starts at `+0.0` and receives the tree
//! outputs (doubles) iteration by iteration, tree by tree; the default
//! prediction then divides by the number of iterations used when the model
//! averages (random forest), and applies the objective's transform. As in
//! LightGBM, raw scores are never averaged.

use super::Model;
use crate::error::PredictError;

/// Options of [`Model::predict_with`], the arguments of `Booster.predict`
/// that change the numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredictOptions {
    /// Return raw scores (`raw_score=True`) instead of the objective's
    /// transform of them.
    pub raw_score: bool,
    /// First boosting iteration to use (`start_iteration`). Clamped to the
    /// number of iterations, as LightGBM does.
    pub start_iteration: usize,
    /// Number of iterations to use from `start_iteration`
    /// (`num_iteration`). `None`, or `Some(0)` as in LightGBM, uses all the
    /// remaining ones; more than remain is clamped. To apply early stopping
    /// pass `Some(best_iteration)`.
    pub num_iteration: Option<usize>,
    /// Walk one tree at a time by LightGBM's rules instead of eight in
    /// lockstep: the same outputs, more slowly (the reference the lockstep
    /// walk is tested against).
    pub one_tree_at_a_time: bool,
}

impl Model {
    /// Raw scores (`Booster.predict(..., raw_score=True)`) of `n_rows`
    /// row-major rows of [`Model::num_features`] values each (NaN means
    /// missing). Returns `n_rows * num_outputs()` values, row-major.
    pub fn predict_raw(&self, rows: &[f64], n_rows: usize) -> Result<Vec<f64>, PredictError> {
        self.predict_with(
            rows,
            n_rows,
            &PredictOptions {
                raw_score: true,
                ..PredictOptions::default()
            },
        )
    }

    /// Predictions (`Booster.predict(...)`): raw scores averaged for a
    /// random forest, then through the objective's transform.
    pub fn predict(&self, rows: &[f64], n_rows: usize) -> Result<Vec<f64>, PredictError> {
        self.predict_with(rows, n_rows, &PredictOptions::default())
    }

    /// [`Model::predict`] / [`Model::predict_raw`] with an iteration window.
    pub fn predict_with(
        &self,
        rows: &[f64],
        n_rows: usize,
        options: &PredictOptions,
    ) -> Result<Vec<f64>, PredictError> {
        let n_features = self.num_features();
        let expected = n_rows.checked_mul(n_features);
        let n_outputs = self.num_outputs();
        if expected != Some(rows.len()) || n_rows.checked_mul(n_outputs).is_none() {
            return Err(PredictError::Shape {
                n_rows,
                n_features,
                expected: expected.unwrap_or(usize::MAX),
                found: rows.len(),
            });
        }
        let (start, count) = self.iteration_window(options);
        let first_tree = start * n_outputs;
        let trees = first_tree..first_tree + count * n_outputs;
        let mut out = vec![0.0f64; n_rows * n_outputs];
        for (scores, row) in out
            .chunks_exact_mut(n_outputs)
            .zip(rows.chunks_exact(n_features))
        {
            let lockstep = !options.one_tree_at_a_time;
            self.forest
                .outputs(trees.clone(), row, lockstep, |t, output| {
                    scores[t % n_outputs] += output;
                });
            if !options.raw_score {
                if self.average_output {
                    // `count` may be 0 (an empty window): 0 / 0 is NaN,
                    // as in LightGBM.
                    let n = count as f64;
                    for s in scores.iter_mut() {
                        *s /= n;
                    }
                }
                self.objective.convert(scores);
            }
        }
        Ok(out)
    }

    /// `GBDT::InitPredict`: the start is clamped to the iterations there
    /// are, a positive count to those remaining, and 0 means all.
    fn iteration_window(&self, options: &PredictOptions) -> (usize, usize) {
        let total = self.num_iterations();
        let start = options.start_iteration.min(total);
        let remaining = total - start;
        let count = match options.num_iteration {
            Some(n) if n > 0 => n.min(remaining),
            _ => remaining,
        };
        (start, count)
    }
}
