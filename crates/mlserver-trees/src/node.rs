//! A node's flags and the numerical split test, which the trees as read
//! ([`crate::tree`]) and their complete layout ([`crate::complete`]) share.

/// Flags in a node's `meta`: missing values go left.
pub(crate) const DEFAULT_LEFT: u32 = 1 << 31;
/// A categorical split.
pub(crate) const CATEGORICAL: u32 = 1 << 30;
/// A leaf.
pub(crate) const LEAF: u32 = 1 << 29;
/// Feature indices must fit below the three flag bits.
pub(crate) const FEATURE_MASK: u32 = LEAF - 1;
/// Trees walked together in lockstep.
pub(crate) const LANES: usize = 8;

/// Whether a present value `x` goes right: not `x < threshold`, XGBoost's
/// test for left, which a NaN threshold fails for every value (where
/// `x >= threshold` would send them all left).
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[inline(always)]
pub(crate) fn goes_right(x: f32, threshold: f32) -> bool {
    !(x < threshold)
}
