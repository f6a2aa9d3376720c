//! The `objective=` header line, and what `Booster.predict` applies to the
//! raw scores for it (each objective's `ConvertOutput` in LightGBM's
//! `src/objective/*`). Every formula is restated operation by operation in
//! double precision, so results are bit-identical given the same `exp`,
//! `log1p` (the platform's libm, as LightGBM's build uses).

use super::error::LoadError;

/// What the default (not raw-score) prediction applies to a row's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Transform {
    Identity,
    /// `reg_sqrt=True`: the model learnt `sqrt(label)`, so square back
    /// keeping the sign.
    SignedSquare,
    /// `1 / (1 + exp(-sigmoid * x))`, per output (binary, multiclassova).
    Sigmoid(f64),
    /// `1 / (1 + exp(-x))`.
    CrossEntropy,
    /// `log1p(exp(x))`.
    CrossEntropyLambda,
    Exp,
    Softmax,
}

/// A recognised objective line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Objective {
    /// The line as written (without `objective=`); `None` when the model
    /// has no objective line (trained with a custom objective).
    pub(crate) line: Option<String>,
    pub(crate) transform: Transform,
}

impl Objective {
    /// Reads the objective line the way LightGBM's
    /// `ObjectiveFunction::CreateObjectiveFunction` does: aliases apply to
    /// the whole line, the first space-separated word is the name, the
    /// others are `key:value` parameters. `num_class` is the header's, which
    /// a multiclass objective must repeat.
    pub(crate) fn parse(line: Option<&str>, num_class: usize) -> Result<Self, LoadError> {
        let Some(line) = line else {
            return Ok(Objective {
                line: None,
                transform: Transform::Identity,
            });
        };
        let canonical = alias(line);
        let mut words = canonical.split(' ').filter(|w| !w.is_empty());
        let name = words.next().unwrap_or_default();
        let params: Vec<&str> = words.collect();
        let sqrt = params.contains(&"sqrt");
        let param = |key: &str| {
            params.iter().rev().find_map(|p| {
                let (k, v) = p.split_once(':')?;
                (k == key && !v.contains(':')).then_some(v)
            })
        };
        let field = |reason: String| LoadError::Field {
            field: "objective".into(),
            reason,
        };
        let sigmoid = || -> Result<f64, LoadError> {
            let raw = param("sigmoid").ok_or_else(|| field("no `sigmoid:` parameter".into()))?;
            let s = atof(raw).ok_or_else(|| field(format!("cannot parse sigmoid `{raw}`")))?;
            if s > 0.0 && s.is_finite() {
                Ok(s)
            } else {
                Err(field(format!("sigmoid {s} is not positive")))
            }
        };
        let classes = || -> Result<(), LoadError> {
            let raw =
                param("num_class").ok_or_else(|| field("no `num_class:` parameter".into()))?;
            match raw.parse::<usize>() {
                Ok(k) if k == num_class => Ok(()),
                _ => Err(field(format!(
                    "num_class:{raw} differs from the header's num_class={num_class}"
                ))),
            }
        };
        let single = || -> Result<(), LoadError> {
            if num_class == 1 {
                Ok(())
            } else {
                Err(field(format!(
                    "`{name}` has one output but the header says num_class={num_class}"
                )))
            }
        };
        let transform = match name {
            // These share LightGBM's L2 `ConvertOutput`, `sqrt` included.
            "regression" | "regression_l1" | "quantile" | "fair" | "mape" => {
                single()?;
                if sqrt {
                    Transform::SignedSquare
                } else {
                    Transform::Identity
                }
            }
            // Huber turns `sqrt` off when it is constructed.
            "huber" | "lambdarank" | "rank_xendcg" => {
                single()?;
                Transform::Identity
            }
            "poisson" | "gamma" | "tweedie" => {
                single()?;
                Transform::Exp
            }
            "binary" => {
                single()?;
                Transform::Sigmoid(sigmoid()?)
            }
            "cross_entropy" => {
                single()?;
                Transform::CrossEntropy
            }
            "cross_entropy_lambda" => {
                single()?;
                Transform::CrossEntropyLambda
            }
            "multiclass" => {
                classes()?;
                Transform::Softmax
            }
            "multiclassova" => {
                classes()?;
                Transform::Sigmoid(sigmoid()?)
            }
            // LightGBM makes no objective object for these: raw scores.
            "custom" => Transform::Identity,
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(LoadError::Unsupported(format!("objective `{shown}`")));
            }
        };
        Ok(Objective {
            line: Some(line.to_owned()),
            transform,
        })
    }

    /// Applies the transform to one row's `scores` (one per output).
    pub(crate) fn convert(&self, scores: &mut [f64]) {
        match self.transform {
            Transform::Identity => {}
            Transform::SignedSquare => {
                for x in scores {
                    // `Common::Sign` is an int: (x > 0) - (x < 0).
                    let sign = f64::from(i8::from(*x > 0.0) - i8::from(*x < 0.0));
                    *x = sign * *x * *x;
                }
            }
            Transform::Sigmoid(sigmoid) => {
                for x in scores {
                    *x = 1.0 / (1.0 + (-sigmoid * *x).exp());
                }
            }
            Transform::CrossEntropy => {
                for x in scores {
                    *x = 1.0 / (1.0 + (-*x).exp());
                }
            }
            Transform::CrossEntropyLambda => {
                for x in scores {
                    *x = x.exp().ln_1p();
                }
            }
            Transform::Exp => {
                for x in scores {
                    *x = x.exp();
                }
            }
            Transform::Softmax => softmax(scores),
        }
    }
}

/// `Common::Softmax`: subtract the maximum (found with `std::max`, whose
/// NaN behaviour this keeps), exponentiate, divide by the running sum.
fn softmax(scores: &mut [f64]) {
    let Some((&first, rest)) = scores.split_first() else {
        return;
    };
    // std::max(a, b) is `a < b ? b : a`, called as max(x[i], wmax).
    let wmax = rest.iter().fold(first, |m, &x| if x < m { m } else { x });
    let mut sum = 0.0;
    for x in scores.iter_mut() {
        *x = (*x - wmax).exp();
        sum += *x;
    }
    for x in scores.iter_mut() {
        *x /= sum;
    }
}

/// `ParseObjectiveAlias`, applied (as LightGBM does) to the whole line, so
/// it only rewrites a bare alias without parameters.
fn alias(line: &str) -> &str {
    match line {
        "regression_l2"
        | "mean_squared_error"
        | "mse"
        | "l2"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse" => "regression",
        "mean_absolute_error" | "l1" | "mae" => "regression_l1",
        "softmax" => "multiclass",
        "multiclass_ova" | "ova" | "ovr" => "multiclassova",
        "xentropy" => "cross_entropy",
        "xentlambda" => "cross_entropy_lambda",
        "mean_absolute_percentage_error" => "mape",
        "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart" => "rank_xendcg",
        "none" | "null" | "na" => "custom",
        other => other,
    }
}

/// LightGBM's `Common::Atof`, which reads the `sigmoid:` parameter. It is
/// not correctly rounded (it sums digits in doubles and scales by powers of
/// ten), so a sigmoid like `0.7` must be read with the same arithmetic to
/// get the same double. `inf` reads as ±1e308, as there. The whole token
/// must be consumed (LightGBM would ignore trailing garbage; such a token
/// is refused instead).
pub(crate) fn atof(token: &str) -> Option<f64> {
    let s = token.trim_start_matches(' ').as_bytes();
    let (sign, s) = match s.first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let starts_number = s
        .first()
        .is_some_and(|&c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E'));
    if !starts_number {
        let word = std::str::from_utf8(s).ok()?.trim_end_matches(' ');
        return match word.to_ascii_lowercase().as_str() {
            "na" | "nan" | "null" => Some(f64::NAN),
            "inf" | "infinity" => Some(sign * 1e308),
            _ => None,
        };
    }
    let mut i = 0;
    let mut value = 0.0f64;
    while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        value = value * 10.0 + f64::from(c - b'0');
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        let mut right = 0.0f64;
        let mut digits: i32 = 0;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            right = f64::from(c - b'0') + right * 10.0;
            digits = digits.saturating_add(1);
            i += 1;
        }
        value += right / pow(10.0, digits);
    }
    let mut divide = false;
    let mut scale = 1.0f64;
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        match s.get(i) {
            Some(b'-') => {
                divide = true;
                i += 1;
            }
            Some(b'+') => i += 1,
            _ => {}
        }
        let mut exponent: u32 = 0;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            // A 32-bit unsigned accumulator, wrapping as in C.
            exponent = exponent.wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
            i += 1;
        }
        let mut exponent = exponent.min(308);
        while exponent >= 50 {
            scale *= 1e50;
            exponent -= 50;
        }
        while exponent >= 8 {
            scale *= 1e8;
            exponent -= 8;
        }
        while exponent > 0 {
            scale *= 10.0;
            exponent -= 1;
        }
    }
    if s[i..].iter().any(|&c| c != b' ') {
        return None;
    }
    Some(sign * if divide { value / scale } else { value * scale })
}

/// `Common::Pow`: exponentiation by halving (or thirding) the power, in
/// this exact order of multiplications.
fn pow(base: f64, power: i32) -> f64 {
    if power < 0 {
        1.0 / pow(base, power.saturating_neg())
    } else if power == 0 {
        1.0
    } else if power % 2 == 0 {
        pow(base * base, power / 2)
    } else if power % 3 == 0 {
        pow(base * base * base, power / 3)
    } else {
        base * pow(base, power - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atof_reads_like_lightgbm() {
        assert_eq!(atof("1"), Some(1.0));
        assert_eq!(atof("0.7"), Some(0.7));
        assert_eq!(atof("-2.5e1"), Some(-25.0));
        assert_eq!(atof("inf"), Some(1e308));
        assert!(atof("nan").is_some_and(f64::is_nan));
        assert_eq!(atof("1x"), None);
        assert_eq!(atof("abc"), None);
        // Integer part plus fraction digits over a power of ten.
        assert_eq!(atof("1.3"), Some(1.0 + 3.0 / 10.0));
        assert_eq!(atof("0.123"), Some(123.0 / (10.0 * (10.0 * 10.0))));
    }

    #[test]
    fn objectives_are_recognised() {
        let t = |line: &str, k| Objective::parse(Some(line), k).map(|o| o.transform);
        assert_eq!(t("binary sigmoid:1", 1).ok(), Some(Transform::Sigmoid(1.0)));
        assert_eq!(t("regression sqrt", 1).ok(), Some(Transform::SignedSquare));
        assert_eq!(t("huber sqrt", 1).ok(), Some(Transform::Identity));
        assert_eq!(t("mse", 1).ok(), Some(Transform::Identity));
        assert_eq!(
            t("multiclass num_class:3", 3).ok(),
            Some(Transform::Softmax)
        );
        assert!(t("multiclass num_class:4", 3).is_err());
        assert!(t("binary", 1).is_err());
        assert!(t("binary sigmoid:-1", 1).is_err());
        assert!(t("binary sigmoid:1", 2).is_err());
        assert!(t("survival", 1).is_err());
    }
}
