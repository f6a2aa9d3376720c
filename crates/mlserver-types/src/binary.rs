//! Binary tensor data extension.
