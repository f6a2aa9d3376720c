//! The body of a unary gRPC call: one length-prefixed message, no more.
//!
//! tonic reads a unary call's first message and then drains the rest of
//! the body to reach its trailers, decoding and dropping every further
//! message: a client may stream messages into a unary call for as long as
//! it keeps the body's deadlines, and each is decoded for nothing. grpcio
//! (MLServer's server) ignores them too; grpc-java ends such a call with
//! INTERNAL ("Too many requests"), as this body does as soon as a second
//! message's prefix arrives, before tonic sees it.

use crate::checked_body::{BoxError, FrameCheck};

/// A unary call's body: one length-prefixed message, no more (when
/// `one_message`; a client-streaming call's body passes as is).
pub(crate) struct UnaryCheck {
    one_message: bool,
    // Where the framing is: bytes of the current prefix seen (0-5), the
    // prefix, and the bytes of the current message still to come.
    prefix_seen: usize,
    prefix: [u8; 5],
    remaining: u64,
    messages: u32,
}

impl UnaryCheck {
    pub(crate) fn new(one_message: bool) -> Self {
        UnaryCheck {
            one_message,
            prefix_seen: 0,
            prefix: [0; 5],
            remaining: 0,
            messages: 0,
        }
    }
}

impl FrameCheck for UnaryCheck {
    fn data(&mut self, data: &[u8]) -> Result<(), BoxError> {
        if !self.one_message
            || follow(
                data,
                &mut self.prefix_seen,
                &mut self.prefix,
                &mut self.remaining,
                &mut self.messages,
            )
        {
            return Ok(());
        }
        // tonic finds a Status in the error and answers it.
        Err(Box::new(tonic::Status::internal(
            "a unary call carries one request message; a second one was sent",
        )))
    }
}

/// Follows the framing over `data`; false once a second message starts.
fn follow(
    mut data: &[u8],
    prefix_seen: &mut usize,
    prefix: &mut [u8; 5],
    remaining: &mut u64,
    messages: &mut u32,
) -> bool {
    while !data.is_empty() {
        if *remaining > 0 {
            let take = (*remaining).min(data.len() as u64);
            *remaining -= take;
            data = &data[take as usize..];
            continue;
        }
        if *prefix_seen == 0 {
            *messages += 1;
            if *messages > 1 {
                return false;
            }
        }
        let take = (5 - *prefix_seen).min(data.len());
        prefix[*prefix_seen..*prefix_seen + take].copy_from_slice(&data[..take]);
        *prefix_seen += take;
        data = &data[take..];
        if *prefix_seen == 5 {
            *remaining = u64::from(u32::from_be_bytes([
                prefix[1], prefix[2], prefix[3], prefix[4],
            ]));
            *prefix_seen = 0;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `follow` over `chunks`, one after the other: whether all pass.
    fn passes(chunks: &[&[u8]]) -> bool {
        let (mut seen, mut prefix, mut remaining, mut messages) = (0, [0; 5], 0, 0);
        chunks
            .iter()
            .all(|c| follow(c, &mut seen, &mut prefix, &mut remaining, &mut messages))
    }

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn one_message_passes_however_it_is_split() {
        let m = message(10);
        assert!(passes(&[&m]));
        for cut in 0..m.len() {
            assert!(passes(&[&m[..cut], &m[cut..]]), "cut at {cut}");
        }
        // An empty message (prefix only) is one message too.
        assert!(passes(&[&message(0)]));
        assert!(passes(&[]));
    }

    #[test]
    fn a_second_message_is_refused_at_its_first_byte() {
        let mut two = message(3);
        two.extend(message(3));
        assert!(!passes(&[&two]));
        let first = message(3);
        assert!(passes(&[&first]));
        assert!(!passes(&[&first, &[0]]));
        // Even after an empty first message.
        assert!(!passes(&[&message(0), &[0]]));
    }
}
