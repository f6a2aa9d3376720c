//! Prediction, in the order and precision of XGBoost's CPU predictor.
//!
//! Each output cell starts at its group's base margin and receives the leaf
//! values of its trees one by one, in tree order, as `f32 += f32` (the
//! predictor's output buffer is `float`). DART scales each tree's output
//! first, exactly as `Dart::PredictBatchImpl` does: the tree is predicted
//! into a zeroed float buffer, multiplied by its float weight, then added.
//! `inplace_predict` (what XGBoost's scikit-learn interface calls) does it
//! differently for DART: each tree is predicted on top of the base margin,
//! the base margin subtracted again, and that scaled and added; in float32
//! the two differ in the last bits ([`PredictOptions::inplace`]).
//! Rows are independent, so evaluating row by row changes nothing.

use std::ops::Range;

use crate::error::PredictError;
use crate::model::{Booster, Model};

/// Options of [`Model::predict_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredictOptions {
    /// Return raw margins (`output_margin=True`) instead of the objective's
    /// transform of them.
    pub output_margin: bool,
    /// Boosting rounds to use, like XGBoost's `iteration_range=(begin, end)`;
    /// `None` uses all rounds. To apply early stopping, pass
    /// `0..best_iteration + 1`. The base score is always included.
    pub rounds: Option<Range<usize>>,
    /// `Booster.inplace_predict`'s arithmetic instead of `Booster.predict`'s
    /// on a `DMatrix`: they differ for DART models only.
    pub inplace: bool,
    /// Walk one tree at a time instead of eight in lockstep: the same
    /// leaves, the same sums, more slowly (the reference the lockstep walk
    /// is tested against).
    pub one_tree_at_a_time: bool,
}

impl Model {
    /// Raw margins (`Booster.predict(..., output_margin=True)`) of `n_rows`
    /// row-major rows of [`Model::num_features`] values each, NaN meaning
    /// missing. Returns `n_rows * num_groups()` values, row-major.
    pub fn predict_margin(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, PredictError> {
        self.predict_with(
            rows,
            n_rows,
            &PredictOptions {
                output_margin: true,
                rounds: None,
                ..PredictOptions::default()
            },
        )
    }

    /// What `Booster.predict` returns: the margins through the objective's
    /// transform (`n_rows * output_columns(false)` values, row-major).
    pub fn predict(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, PredictError> {
        self.predict_with(rows, n_rows, &PredictOptions::default())
    }

    /// [`Model::predict`] / [`Model::predict_margin`] with a round limit.
    pub fn predict_with(
        &self,
        rows: &[f32],
        n_rows: usize,
        options: &PredictOptions,
    ) -> Result<Vec<f32>, PredictError> {
        let n_features = self.n_columns;
        let expected = n_rows.checked_mul(n_features);
        if expected != Some(rows.len()) {
            return Err(PredictError::Shape {
                n_rows,
                n_features,
                expected: expected.unwrap_or(usize::MAX),
                found: rows.len(),
            });
        }
        if n_rows.checked_mul(self.n_groups).is_none() {
            return Err(PredictError::Shape {
                n_rows,
                n_features,
                expected: usize::MAX,
                found: rows.len(),
            });
        }
        let trees = self.tree_range(options.rounds.clone())?;
        let mut out = self.margins(rows, n_rows, trees, options);
        if !options.output_margin {
            self.objective.transform(&mut out, self.n_groups);
        }
        Ok(out)
    }

    /// Boosting rounds to tree indices, as XGBoost's `LayerToTree`.
    fn tree_range(&self, rounds: Option<Range<usize>>) -> Result<Range<usize>, PredictError> {
        let total = self.rounds();
        let Range { start, end } = rounds.unwrap_or(0..total);
        if start > end || end > total {
            return Err(PredictError::IterationRange {
                begin: start,
                end,
                rounds: total,
            });
        }
        Ok(self.iteration_indptr[start]..self.iteration_indptr[end])
    }

    fn margins(
        &self,
        rows: &[f32],
        n_rows: usize,
        trees: Range<usize>,
        options: &PredictOptions,
    ) -> Vec<f32> {
        let groups = self.n_groups;
        let mut out = Vec::with_capacity(n_rows * groups);
        for _ in 0..n_rows {
            out.extend_from_slice(&self.base_margin);
        }
        if self.n_columns == 0 {
            // No row data to index; every tree is a single leaf then.
            let empty: [f32; 0] = [];
            for cell in out.chunks_exact_mut(groups) {
                self.add_trees(cell, &empty, trees.clone(), options);
            }
            return out;
        }
        for (cell, row) in out
            .chunks_exact_mut(groups)
            .zip(rows.chunks_exact(self.n_columns))
        {
            self.add_trees(cell, row, trees.clone(), options);
        }
        out
    }

    /// Adds the trees' leaves to one row's outputs, in tree order.
    #[inline]
    fn add_trees(
        &self,
        cell: &mut [f32],
        row: &[f32],
        trees: Range<usize>,
        options: &PredictOptions,
    ) {
        let lockstep = !options.one_tree_at_a_time;
        let groups = &self.tree_group;
        match self.booster {
            Booster::GbTree => self.forest.leaves(trees, row, lockstep, |t, leaf| {
                cell[groups[t] as usize] += leaf;
            }),
            Booster::Dart if options.inplace => {
                self.forest.leaves(trees, row, lockstep, |t, leaf| {
                    // `Dart::InplacePredict`: the tree predicted on top of
                    // the base margin, which is then taken off again.
                    let group = groups[t] as usize;
                    let base = self.base_margin[group];
                    let alone = (base + leaf) - base;
                    cell[group] += alone * self.weight_drop[t];
                })
            }
            Booster::Dart => self.forest.leaves(trees, row, lockstep, |t, leaf| {
                // `0.0 +` is XGBoost's zero-filled scratch buffer; it also
                // turns a -0.0 leaf into +0.0, as there.
                cell[groups[t] as usize] += (0.0f32 + leaf) * self.weight_drop[t];
            }),
        }
    }
}
