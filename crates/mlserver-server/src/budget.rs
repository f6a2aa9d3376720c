//! The memory budget's side in the transports: request bodies charged as
//! they arrive (see [`mlserver_core::budget`]). A body declaring its length
//! is charged for all of it when its head arrives, so a request the budget
//! cannot take fails before a byte of its body is read (REST answers 503,
//! gRPC RESOURCE_EXHAUSTED).

use std::sync::Arc;

use mlserver_core::budget::PER_BODY_BYTE;

use crate::checked_body::{BoxError, FrameCheck};
pub use mlserver_core::budget::{BudgetExhausted, Charge, MemoryBudget};

/// How a body refused by the budget fails: REST reads the error's message
/// (503), gRPC the status (`RESOURCE_EXHAUSTED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Rest,
    Grpc,
}

/// A body's bytes charged to the request's charge as they arrive (beyond
/// what was charged for its declared length); the body fails as soon as
/// the budget cannot take them.
pub(crate) struct BudgetCheck {
    charge: Option<Arc<Charge>>,
    refusal: Refusal,
    // Body bytes already paid for (the declared length).
    prepaid: u64,
    received: u64,
    // The declared length could not be charged: fail at once.
    refused: Option<BudgetExhausted>,
}

impl BudgetCheck {
    /// Charges `declared` body bytes now (when known and within `cap`, the
    /// size limit: a larger body is refused by its limit, unread).
    pub(crate) fn new(
        charge: Option<Arc<Charge>>,
        declared: Option<u64>,
        cap: u64,
        refusal: Refusal,
    ) -> Self {
        let mut refused = None;
        let mut prepaid = 0;
        if let (Some(charge), Some(declared)) = (&charge, declared.filter(|&d| d <= cap)) {
            match charge.grow(declared.saturating_mul(PER_BODY_BYTE)) {
                Ok(()) => prepaid = declared,
                Err(e) => refused = Some(e),
            }
        }
        BudgetCheck {
            charge,
            refusal,
            prepaid,
            received: 0,
            refused,
        }
    }

    fn refuse(&self, e: BudgetExhausted) -> BoxError {
        match self.refusal {
            Refusal::Rest => Box::new(e),
            // tonic finds a Status in the error and answers it.
            Refusal::Grpc => Box::new(tonic::Status::resource_exhausted(e.to_string())),
        }
    }
}

impl FrameCheck for BudgetCheck {
    fn refused(&mut self) -> Option<BoxError> {
        self.refused.take().map(|e| self.refuse(e))
    }

    fn data(&mut self, data: &[u8]) -> Result<(), BoxError> {
        let Some(charge) = &self.charge else {
            return Ok(());
        };
        let before = self.received;
        self.received += data.len() as u64;
        let unpaid = self.received.saturating_sub(self.prepaid.max(before));
        if unpaid > 0 {
            if let Err(e) = charge.grow(unpaid * PER_BODY_BYTE) {
                return Err(self.refuse(e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checked_body::CheckedBody;
    use http_body_util::BodyExt;
    use hyper::body::Bytes;

    type Frames = tokio_stream::Iter<
        std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
    >;

    fn body(chunks: Vec<&'static [u8]>) -> http_body_util::StreamBody<Frames> {
        let frames: Vec<_> = chunks
            .into_iter()
            .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c))))
            .collect();
        http_body_util::StreamBody::new(tokio_stream::iter(frames))
    }

    #[tokio::test]
    async fn a_declared_length_is_charged_before_reading_and_the_rest_as_it_comes() {
        let budget = MemoryBudget::new(20);
        // 5 declared bytes cost 10; the 3 undeclared ones 6 more.
        let charge = Charge::new(budget.clone());
        let b = CheckedBody::new(
            body(vec![b"abcde", b"fgh"]),
            BudgetCheck::new(Some(charge.clone()), Some(5), 1 << 20, Refusal::Rest),
        );
        assert_eq!(budget.used(), 10);
        let bytes = b.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abcdefgh");
        assert_eq!(budget.used(), 16);
        drop(charge);
        assert_eq!(budget.used(), 0);

        // Declared past the budget: refused before the first byte.
        let charge = Charge::new(budget.clone());
        let mut b = CheckedBody::new(
            body(vec![b"x"]),
            BudgetCheck::new(Some(charge.clone()), Some(11), 1 << 20, Refusal::Rest),
        );
        let e = std::pin::Pin::new(&mut b)
            .frame()
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("memory budget"), "{e}");
        assert_eq!(budget.used(), 0);

        // Undeclared bytes past the budget fail the body where they pass it.
        let charge = Charge::new(budget.clone());
        let b = CheckedBody::new(
            body(vec![b"0123456789", b"0123456789"]),
            BudgetCheck::new(Some(charge.clone()), None, 1 << 20, Refusal::Grpc),
        );
        let e = b.collect().await.unwrap_err();
        assert!(e.to_string().contains("memory budget"), "{e}");
        drop(charge);
        assert_eq!(budget.used(), 0);

        // A length above the size limit is left to the limit's 413.
        let charge = Charge::new(budget.clone());
        let _b = BudgetCheck::new(Some(charge), Some(1000), 100, Refusal::Rest);
        assert_eq!(budget.used(), 0);
    }
}
