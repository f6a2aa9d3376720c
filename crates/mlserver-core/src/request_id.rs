//! Ids for requests that come without one: version-4 UUIDs, as MLServer's
//! `uuid.uuid4()`.
//!
//! `Uuid::new_v4` asks the kernel for 16 random bytes on every call, a
//! syscall per request with this glibc. Ids need to be unique, not secret,
//! so each thread draws them from a fast generator (wyrand) seeded once
//! from the OS-seeded keys std gives every thread.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish());
}

/// wyrand: a 64-bit state advanced by an odd constant, mixed by a
/// 128-bit multiply.
fn next(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
    state.set(s);
    let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

/// A new id in the hyphenated form, e.g. `9b2f0c1e-3f4a-4b8e-9c6d-...`.
pub(crate) fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    STATE.with(|state| {
        bytes[..8].copy_from_slice(&next(state).to_le_bytes());
        bytes[8..].copy_from_slice(&next(state).to_le_bytes());
    });
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_version_4_uuids() {
        let id = new_request_id();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(id.len(), 36);
        assert_eq!(id, parsed.hyphenated().to_string());
    }

    #[test]
    fn ids_do_not_repeat_within_or_across_threads() {
        let ids = |n| (0..n).map(|_| new_request_id()).collect::<Vec<_>>();
        let mut seen: HashSet<String> = ids(10_000).into_iter().collect();
        assert_eq!(seen.len(), 10_000);
        let others: Vec<Vec<String>> = (0..4)
            .map(|_| std::thread::spawn(move || ids(10_000)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        for id in others.into_iter().flatten() {
            assert!(seen.insert(id), "an id repeated across threads");
        }
        assert_eq!(seen.len(), 50_000);
    }
}
