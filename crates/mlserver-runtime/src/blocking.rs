//! Running CPU-bound work off the async reactor.

use crate::error::panic_message;
use crate::MLServerError;

/// Runs `f` on tokio's blocking thread pool and waits for it.
///
/// Use it for anything that computes for more than a few microseconds (a
/// forward pass, a large decode): on the reactor it would delay every other
/// request, health checks included. A panic in `f` becomes an
/// [`MLServerError::Internal`] for this request only.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sum = mlserver_runtime::blocking(|| Ok((0..1000u64).sum::<u64>())).await.unwrap();
/// assert_eq!(sum, 499500);
/// # }
/// ```
pub async fn blocking<T, F>(f: F) -> Result<T, MLServerError>
where
    F: FnOnce() -> Result<T, MLServerError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(MLServerError::Internal(format!(
            "runtime panicked: {}",
            panic_message(&*e.into_panic())
        ))),
        Err(e) => Err(MLServerError::Internal(format!(
            "blocking task failed: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_become_internal_errors() {
        let r: Result<(), _> = blocking(|| panic!("boom")).await;
        let e = r.unwrap_err();
        assert!(
            matches!(e, MLServerError::Internal(ref m) if m.contains("boom")),
            "{e}"
        );
    }
}
