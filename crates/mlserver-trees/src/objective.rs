//! Objectives: how `base_score` enters margin space, and how `predict`
//! leaves it. Each function restates XGBoost's float32 arithmetic (as of
//! 3.2: `src/common/math.h`, `src/objective/*`) operation by operation, so
//! results are bit-identical, NaN corner cases included. `exp`/`ln` are the
//! platform's `expf`/`logf` (glibc on Linux), the same functions XGBoost's
//! C++ calls.

use crate::error::LoadError;

/// How a stored `base_score` (output space) becomes the starting margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Identity,
    /// Logistic objectives: clamp to `[1e-6, 1 - 1e-6]`, then logit.
    Logit,
    /// Log-link objectives (Poisson, gamma, Tweedie).
    Log,
}

/// What `predict` (without `output_margin`) applies to the margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transform {
    Identity,
    Sigmoid,
    Exp,
    /// `binary:hinge`: 1 if the margin is positive, else 0.
    Hinge,
    /// `multi:softprob`: softmax across each row's groups.
    Softmax,
    /// `multi:softmax`: index of each row's largest margin (one column).
    ArgMax,
}

/// A supported objective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Objective {
    pub(crate) name: String,
    pub(crate) link: Link,
    pub(crate) transform: Transform,
}

impl Objective {
    /// Maps an objective name to its link and transform, refusing the ones
    /// whose prediction arithmetic has not been checked against XGBoost.
    pub(crate) fn from_name(name: &str) -> Result<Self, LoadError> {
        use {Link as L, Transform as T};
        let (link, transform) = match name {
            "reg:squarederror"
            | "reg:linear"
            | "reg:squaredlogerror"
            | "reg:pseudohubererror"
            | "reg:absoluteerror"
            | "reg:quantileerror"
            | "rank:pairwise"
            | "rank:ndcg"
            | "rank:map" => (L::Identity, T::Identity),
            // `LogisticRaw::ProbToMargin` is the identity: no logit here.
            "binary:logitraw" => (L::Identity, T::Identity),
            "reg:logistic" | "binary:logistic" => (L::Logit, T::Sigmoid),
            "count:poisson" | "reg:gamma" | "reg:tweedie" => (L::Log, T::Exp),
            "binary:hinge" => (L::Identity, T::Hinge),
            "multi:softprob" => (L::Identity, T::Softmax),
            "multi:softmax" => (L::Identity, T::ArgMax),
            other => {
                return Err(LoadError::Unsupported(format!(
                    "objective `{other}` (its prediction transform is not implemented)"
                )))
            }
        };
        Ok(Objective {
            name: name.to_owned(),
            link,
            transform,
        })
    }

    /// `base_score` (output space) to margin space, as the learner does when
    /// it loads a fitted model.
    pub(crate) fn to_margin(&self, base_score: f32) -> f32 {
        match self.link {
            Link::Identity => base_score,
            Link::Logit => {
                const RT_EPS: f32 = 1e-6;
                // common::Max / common::Min are `a < b ? b : a` / `a > b ? b : a`.
                let v = if base_score < RT_EPS {
                    RT_EPS
                } else {
                    base_score
                };
                let hi = 1.0f32 - RT_EPS;
                let v = if v > hi { hi } else { v };
                -((1.0f32 / v - 1.0f32).ln())
            }
            Link::Log => base_score.ln(),
        }
    }

    /// Columns per row that `predict` returns for `n_groups` margin columns.
    pub(crate) fn output_columns(&self, n_groups: usize) -> usize {
        match self.transform {
            Transform::ArgMax => 1,
            _ => n_groups,
        }
    }

    /// Applies the prediction transform to row-major margins in place,
    /// shrinking them to one column for `multi:softmax`.
    pub(crate) fn transform(&self, margins: &mut Vec<f32>, n_groups: usize) {
        match self.transform {
            Transform::Identity => {}
            Transform::Sigmoid => margins.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Transform::Exp => margins.iter_mut().for_each(|v| *v = v.exp()),
            Transform::Hinge => margins
                .iter_mut()
                .for_each(|v| *v = if *v > 0.0 { 1.0 } else { 0.0 }),
            Transform::Softmax => {
                if n_groups > 0 {
                    margins.chunks_exact_mut(n_groups).for_each(softmax);
                }
            }
            Transform::ArgMax => {
                if n_groups > 0 {
                    let classes: Vec<f32> = margins
                        .chunks_exact(n_groups)
                        .map(|row| argmax(row) as f32)
                        .collect();
                    *margins = classes;
                }
            }
        }
    }
}

/// `common::Sigmoid(float)`: `1 / (expf(min(-x, 88.7)) + 1 + 1e-16)`.
fn sigmoid(x: f32) -> f32 {
    // The epsilon is a double literal narrowed to float in the C++.
    const EPS: f32 = 1e-16_f64 as f32;
    let neg = -x;
    // std::min(a, b) is `b < a ? b : a` (a NaN `a` stays NaN; f32::min would not).
    let clamped = if 88.7f32 < neg { 88.7f32 } else { neg };
    let denom = clamped.exp() + 1.0f32 + EPS;
    1.0f32 / denom
}

/// `common::Softmax`: float max (`fmaxf`), float `expf`, double sum, float divide.
fn softmax(row: &mut [f32]) {
    let Some((&first, rest)) = row.split_first() else {
        return;
    };
    // f32::max ignores a NaN operand exactly like fmaxf.
    let wmax = rest.iter().fold(first, |m, &v| v.max(m));
    let mut wsum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - wmax).exp();
        wsum += f64::from(*v);
    }
    let sum = wsum as f32;
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// `common::FindMaxIndex`: the first index whose value is strictly greater
/// than every earlier candidate.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_link_clamps_like_xgboost() {
        let o = Objective::from_name("binary:logistic").expect("known");
        assert_eq!(o.to_margin(0.5), 0.0);
        assert!(o.to_margin(0.0).is_finite());
        assert!(o.to_margin(1.0).is_finite());
        assert_eq!(
            Objective::from_name("binary:logitraw")
                .expect("known")
                .to_margin(0.5),
            0.5
        );
    }

    #[test]
    fn transforms_handle_corner_cases() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(f32::NAN).is_nan());
        assert_eq!(sigmoid(-1000.0), 1.0 / (88.7f32.exp() + 1.0));
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), 1);
        let mut row = [0.0f32, 0.0];
        softmax(&mut row);
        assert_eq!(row, [0.5, 0.5]);
    }

    #[test]
    fn unknown_objectives_are_refused() {
        assert!(matches!(
            Objective::from_name("survival:aft"),
            Err(LoadError::Unsupported(_))
        ));
    }
}
