//! Running CPU-bound work off the async reactor, on the server's one lane
//! for computing.
//!
//! The server's executor runs predictions that compute on its
//! `parallel_workers` threads, or, for models measured cheap, on the
//! request's own task; it polls them [`on_compute_lane`]. There, work a
//! runtime hands to [`blocking`] is computed in place: the lane's threads
//! are the bound on what computes at once (a pool task awaiting tokio's
//! blocking pool would free its thread for another prediction, and nothing
//! would bound the blocking work), and the prediction is spared two
//! thread hand-offs. Anywhere else (a model's `load`, a runtime's own
//! tasks, `parallel_workers: 0`) [`blocking`] runs on tokio's blocking pool.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::panic_message;
use crate::MLServerError;

thread_local! {
    /// Whether the future this thread polls now is on the compute lane.
    static ON_LANE: Cell<bool> = const { Cell::new(false) };
}

pin_project_lite::pin_project! {
    /// A future polled on the compute lane (see [`on_compute_lane`]).
    pub struct OnComputeLane<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for OnComputeLane<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Set for this poll only: between polls the thread runs other
        // tasks, and the future may move to another thread.
        let was = ON_LANE.replace(true);
        let polled = self.project().inner.poll(cx);
        ON_LANE.set(was);
        polled
    }
}

/// `future`, polled as part of the server's compute lane: [`blocking`]
/// inside it computes on the polling thread. For the server's executor,
/// which bounds that lane; a runtime never needs it.
pub fn on_compute_lane<F: Future>(future: F) -> OnComputeLane<F> {
    OnComputeLane { inner: future }
}

/// Runs `f` off the async reactor and waits for it: in place on the
/// server's compute lane (a prediction's own call), else on tokio's
/// blocking thread pool.
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
    let panicked = |payload: &(dyn std::any::Any + Send)| {
        MLServerError::Internal(format!("runtime panicked: {}", panic_message(payload)))
    };
    if ON_LANE.get() {
        return std::panic::catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|p| Err(panicked(&*p)));
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(panicked(&*e.into_panic())),
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
        for lane in [false, true] {
            let work = blocking(|| -> Result<(), _> { panic!("boom") });
            let r = match lane {
                false => work.await,
                true => on_compute_lane(work).await,
            };
            let e = r.unwrap_err();
            assert!(
                matches!(e, MLServerError::Internal(ref m) if m.contains("runtime panicked: boom")),
                "{e}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_the_lane_the_work_stays_on_its_thread() {
        let thread = || Ok(std::thread::current().id());
        let here = std::thread::current().id();
        assert_eq!(on_compute_lane(blocking(thread)).await.unwrap(), here);
        assert_ne!(blocking(thread).await.unwrap(), here);
        // The mark is the lane's poll only, not the thread's from then on.
        assert_ne!(blocking(thread).await.unwrap(), here);
    }
}
