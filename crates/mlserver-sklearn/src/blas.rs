//! `X @ W.T` for float64, summed in exactly the order numpy 2.4's `matmul`
//! and OpenBLAS 0.3.31 (`scipy_openblas`, SkylakeX kernels) sum it.
//!
//! A linear model's raw output is one dot product per row and output, but
//! numpy hands the product to a different BLAS routine depending on the
//! shapes, and each routine adds the `d` products in its own order (its own
//! vector lanes, partial sums and tails), which changes the last bits. For
//! `X` of `n x d` and `W` of `k x d` (both row-major):
//!
//! - `d == 1`: numpy's own loop, `0 + x * w`;
//! - `n == 1, k == 1`: `ddot`;
//! - `k == 1`: `dgemv_t` with the rows of `X` as columns; `n == 1`: with
//!   the rows of `W` as columns;
//! - otherwise `dgemm` (`C' = W X'`, "TN"): the small-matrix kernel when
//!   `d >= 32` and `n k <= 1200`, else the packed kernel.
//!
//! Other memory layouts of `W` (Fortran order, as `Ridge`'s multi-output
//! and multiclass `LogisticRegression`'s `coef_`) make numpy call other
//! routines (`dgemv_n`, NN `dgemm`) that sum differently; the exporter
//! hands over only coefficients whose rows are contiguous.
//!
//! The orders are described beside each routine below; `blas_sweep`
//! checks them against numpy on thousands of shapes. Where OpenBLAS
//! would split the work between threads (large products), the split
//! depends on the machine, so [`plan`] declines those shapes instead.

/// OpenBLAS's `dgemv_t` works on blocks of at most this many elements.
const GEMV_BLOCK: usize = 2048;
/// `ddot` runs on several threads above this length.
const DOT_THREADED: usize = 10_000;
/// `dgemv` runs on several threads from this many matrix elements.
const GEMV_THREADED: usize = 115_200 * 4;
/// `dgemm` runs on several threads above this many multiply-adds.
const GEMM_THREADED: usize = 65_536 * 4;
/// The packed `dgemm` splits the shared dimension into blocks of this.
const GEMM_Q: usize = 384;
/// Rows beyond which the packed `dgemm` path has not been compared with
/// numpy (its outer blocking could start over).
const GEMM_MAX_ROWS: usize = 4096;

/// The routine numpy and OpenBLAS use for a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// numpy's loop without BLAS (one feature).
    Product,
    /// `ddot`.
    Dot,
    /// `dgemv_t`, one output per row of `X`.
    GemvRows,
    /// `dgemv_t`, one output per row of `W` (a single row of `X`).
    GemvOutputs,
    /// `dgemm`'s small-matrix TN kernel.
    SmallGemm,
    /// `dgemm`'s packed kernel, single-threaded.
    Gemm,
}

/// The path for `n x d` times `(k x d)'`, or why it is not reproduced.
pub(crate) fn plan(n: usize, d: usize, k: usize) -> Result<Path, String> {
    let too_big = |what: &str| {
        Err(format!(
            "a {n}x{d} input times {k} outputs runs {what} on several threads \
             in OpenBLAS; not computed natively"
        ))
    };
    if d == 1 {
        return Ok(Path::Product);
    }
    if n == 1 && k == 1 {
        return if d > DOT_THREADED {
            too_big("ddot")
        } else {
            Ok(Path::Dot)
        };
    }
    if n == 1 || k == 1 {
        let cols = if k == 1 { n } else { k };
        if d.saturating_mul(cols) >= GEMV_THREADED {
            return too_big("dgemv");
        }
        return Ok(if k == 1 {
            Path::GemvRows
        } else {
            Path::GemvOutputs
        });
    }
    let mnk = (k as f64) * (n as f64) * (d as f64);
    if mnk <= 1e6 && d >= 32 && k.saturating_mul(n) <= 1200 {
        return Ok(Path::SmallGemm);
    }
    if mnk > GEMM_THREADED as f64 || n > GEMM_MAX_ROWS {
        return too_big("dgemm");
    }
    Ok(Path::Gemm)
}

/// `X @ W.T` (`n x k`, row-major) as numpy computes it; `x` is `n x d`,
/// `w` is `k x d`. The caller checked the shape with [`plan`].
pub(crate) fn matmul(path: Path, x: &[f64], n: usize, d: usize, w: &[f64], k: usize) -> Vec<f64> {
    let row = |r: usize| &x[r * d..(r + 1) * d];
    let wrow = |c: usize| &w[c * d..(c + 1) * d];
    match path {
        // numpy zeroes the output and adds the product.
        Path::Product => (0..n)
            .flat_map(|r| (0..k).map(move |c| 0.0 + x[r] * w[c]))
            .collect(),
        // numpy adds the result to a zero.
        Path::Dot => vec![0.0 + ddot(row(0), wrow(0))],
        Path::GemvRows => gemv_t(wrow(0), n, row),
        Path::GemvOutputs => gemv_t(row(0), k, wrow),
        Path::SmallGemm => small_gemm(x, n, d, w, k),
        Path::Gemm => gemm(x, n, d, w, k),
    }
}

fn fma(a: f64, b: f64, c: f64) -> f64 {
    a.mul_add(b, c)
}

/// `ddot` (contiguous): below 16 elements one fused multiply-add after the
/// other. Otherwise the first `n & !15` elements go to a vector kernel:
/// 32 fused lanes (element `i` in lane `i % 32`) over whole blocks of 32,
/// folded to 16 lanes (lane `l` plus lane `l + 4` of each group of 8),
/// then one more block of 16 if there is one, the four groups of 4 lanes
/// added in order, and the 4 lanes as `(l0 + l2) + (l1 + l3)`; the
/// remaining elements are fused onto that one by one.
fn ddot(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    let n16 = n & !15;
    let mut dot = 0.0;
    if n16 > 0 {
        let n32 = n16 & !31;
        let mut wide = [[0.0f64; 8]; 4];
        let mut i = 0;
        while i < n32 {
            for (g, acc) in wide.iter_mut().enumerate() {
                for (l, a) in acc.iter_mut().enumerate() {
                    let e = i + 8 * g + l;
                    *a = fma(x[e], y[e], *a);
                }
            }
            i += 32;
        }
        let mut acc = [[0.0f64; 4]; 4];
        for (g, a) in acc.iter_mut().enumerate() {
            for l in 0..4 {
                a[l] = wide[g][l] + wide[g][l + 4];
            }
        }
        while i < n16 {
            for (g, a) in acc.iter_mut().enumerate() {
                for (l, v) in a.iter_mut().enumerate() {
                    let e = i + 4 * g + l;
                    *v = fma(x[e], y[e], *v);
                }
            }
            i += 16;
        }
        let s: [f64; 4] =
            std::array::from_fn(|l| ((acc[0][l] + acc[1][l]) + acc[2][l]) + acc[3][l]);
        dot = (s[0] + s[2]) + (s[1] + s[3]);
    }
    for e in n16..n {
        dot = fma(y[e], x[e], dot);
    }
    dot
}

/// `dgemv_t`: `y[j] = col(j) . x` for `cols` columns of `x.len()`
/// elements. The elements up to the last multiple of 4 go through kernels
/// in blocks of 2048, each block's result added to `y[j]` (starting at
/// zero). The kernel depends on the column's position: columns in whole
/// groups of 4 use 4 fused lanes (`i % 4`) added as `(l0 + l2) + (l1 +
/// l3)`; of the remaining columns, a pair uses 2 unfused lanes (`i % 2`)
/// added at the end, and a last single column 4 unfused lanes added like
/// the fused ones. The last `len % 4` elements are then added by plain C
/// code, which the compiler fused: see [`gemv_tail`].
fn gemv_t<'a>(x: &[f64], cols: usize, col: impl Fn(usize) -> &'a [f64]) -> Vec<f64> {
    let m = x.len();
    let main = m & !3;
    let quads = cols & !3;
    let pair_end = if cols & 2 != 0 { quads + 2 } else { quads };
    let mut y = vec![0.0f64; cols];
    let mut start = 0;
    while start < main {
        let end = (start + GEMV_BLOCK).min(main);
        let xs = &x[start..end];
        for (j, yj) in y.iter_mut().enumerate() {
            let a = &col(j)[start..end];
            let r = if j < quads {
                lanes4(a, xs, true)
            } else if j < pair_end {
                lanes2(a, xs)
            } else {
                lanes4(a, xs, false)
            };
            *yj += r;
        }
        start = end;
    }
    if main < m {
        for (j, yj) in y.iter_mut().enumerate() {
            *yj = gemv_tail(*yj, &col(j)[main..], &x[main..]);
        }
    }
    y
}

/// 4 lanes over a multiple of 4 elements, fused or not, then
/// `(l0 + l2) + (l1 + l3)`.
fn lanes4(a: &[f64], x: &[f64], fused: bool) -> f64 {
    let mut l = [0.0f64; 4];
    for (ac, xc) in a.chunks_exact(4).zip(x.chunks_exact(4)) {
        for t in 0..4 {
            l[t] = if fused {
                fma(ac[t], xc[t], l[t])
            } else {
                l[t] + ac[t] * xc[t]
            };
        }
    }
    (l[0] + l[2]) + (l[1] + l[3])
}

/// 2 unfused lanes (even and odd elements), then `l0 + l1`.
fn lanes2(a: &[f64], x: &[f64]) -> f64 {
    let mut l = [0.0f64; 2];
    for (ac, xc) in a.chunks_exact(2).zip(x.chunks_exact(2)) {
        l[0] += ac[0] * xc[0];
        l[1] += ac[1] * xc[1];
    }
    l[0] + l[1]
}

/// The last 1 to 3 elements of `dgemv_t`: `y + (a0 x0 + a1 x1 + a2 x2)` in
/// C, which GCC contracts: the first product is fused with the sum of the
/// second, the third fused onto that; a single element is fused into `y`.
fn gemv_tail(y: f64, a: &[f64], x: &[f64]) -> f64 {
    match a.len() {
        1 => fma(a[0], x[0], y),
        2 => y + fma(a[0], x[0], a[1] * x[1]),
        _ => y + fma(a[2], x[2], fma(a[0], x[0], a[1] * x[1])),
    }
}

/// `dgemm`'s small-matrix TN kernel (`d >= 32`): each output sums in 8
/// fused lanes (`i % 8`, the last partial group with zeros), reduced by
/// tile: outputs in whole groups of 4 `W` rows, or in whole groups of 4
/// `X` rows, as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`;
/// the others as `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`.
fn small_gemm(x: &[f64], n: usize, d: usize, w: &[f64], k: usize) -> Vec<f64> {
    let (k4, n4) = (k & !3, n & !3);
    let mut out = vec![0.0f64; n * k];
    for r in 0..n {
        let xr = &x[r * d..(r + 1) * d];
        for c in 0..k {
            let wc = &w[c * d..(c + 1) * d];
            let mut l = [0.0f64; 8];
            for (wch, xch) in wc.chunks(8).zip(xr.chunks(8)) {
                // Lanes past the end load zeros: `fma(0, 0, lane)`.
                for (t, lane) in l.iter_mut().enumerate() {
                    let a = wch.get(t).copied().unwrap_or(0.0);
                    let b = xch.get(t).copied().unwrap_or(0.0);
                    *lane = fma(a, b, *lane);
                }
            }
            out[r * k + c] = if c < k4 || r < n4 {
                ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
            } else {
                ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
            };
        }
    }
    out
}

/// The blocks of the shared dimension the packed `dgemm` driver uses.
fn k_blocks(d: usize) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < d {
        let mut len = d - start;
        if len >= 2 * GEMM_Q {
            len = GEMM_Q;
        } else if len > GEMM_Q {
            len = (len / 2).div_ceil(16) * 16;
        }
        blocks.push((start, start + len));
        start += len;
    }
    blocks
}

/// The packed `dgemm` (single thread): per block of the shared dimension,
/// one fused multiply-add chain per output in element order, added to the
/// output (zero at first). The SkylakeX kernel would split the chain for
/// some tiles of 12 rows, but numpy's OpenBLAS is a multi-target build
/// whose generic driver hands the kernel at most 6 rows at a time, where
/// it never does.
fn gemm(x: &[f64], n: usize, d: usize, w: &[f64], k: usize) -> Vec<f64> {
    let blocks = k_blocks(d);
    let mut out = vec![0.0f64; n * k];
    for r in 0..n {
        let xr = &x[r * d..(r + 1) * d];
        for c in 0..k {
            let wc = &w[c * d..(c + 1) * d];
            let o = &mut out[r * k + c];
            for &(s, e) in &blocks {
                let acc = wc[s..e]
                    .iter()
                    .zip(&xr[s..e])
                    .fold(0.0, |acc, (&p, &q)| fma(p, q, acc));
                *o += acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_numpy_dispatch() {
        assert_eq!(plan(5, 1, 3), Ok(Path::Product));
        assert_eq!(plan(1, 7, 1), Ok(Path::Dot));
        assert_eq!(plan(9, 7, 1), Ok(Path::GemvRows));
        assert_eq!(plan(1, 7, 3), Ok(Path::GemvOutputs));
        assert_eq!(plan(9, 40, 3), Ok(Path::SmallGemm));
        assert_eq!(plan(9, 7, 3), Ok(Path::Gemm));
        assert_eq!(plan(500, 40, 3), Ok(Path::Gemm));
        assert!(plan(100_000, 8, 1).is_err());
        assert!(plan(20_000, 8, 3).is_err());
        assert!(plan(1, 20_000, 1).is_err());
    }

    #[test]
    fn exact_on_small_integers() {
        // Every order gives the same sum on small integers.
        for (n, d, k) in [
            (1, 1, 1),
            (1, 37, 1),
            (5, 6, 1),
            (1, 6, 4),
            (7, 40, 3),
            (30, 9, 5),
        ] {
            let x: Vec<f64> = (0..n * d).map(|i| (i % 7) as f64 - 3.0).collect();
            let w: Vec<f64> = (0..k * d).map(|i| (i % 5) as f64 - 2.0).collect();
            let path = plan(n, d, k).unwrap();
            let got = matmul(path, &x, n, d, &w, k);
            for r in 0..n {
                for c in 0..k {
                    let want: f64 = (0..d).map(|i| x[r * d + i] * w[c * d + i]).sum();
                    assert_eq!(got[r * k + c], want, "{path:?} {n}x{d}x{k} at {r},{c}");
                }
            }
        }
    }

    #[test]
    fn shared_dimension_blocks() {
        assert_eq!(k_blocks(10), [(0, 10)]);
        assert_eq!(k_blocks(500), [(0, 256), (256, 500)]);
        // Unreachable through `plan` (the product would be threaded), kept as the driver does it.
        assert_eq!(k_blocks(800), [(0, 384), (384, 592), (592, 800)]);
    }

    #[test]
    fn signed_zero_as_numpy() {
        // numpy adds BLAS's result to +0: a -0 dot product comes out +0.
        let got = matmul(Path::Dot, &[-0.0, 0.0], 1, 2, &[1.0, 1.0], 1);
        assert_eq!(got[0].to_bits(), 0);
        let got = matmul(Path::Product, &[-1.0], 1, 1, &[0.0], 1);
        assert_eq!(got[0].to_bits(), 0);
    }
}
