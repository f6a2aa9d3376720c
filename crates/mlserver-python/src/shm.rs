//! Shared memory between the server and a worker, for tensor contents: a
//! large tensor crosses as an offset into a mapping both processes hold,
//! not inside a socket frame (which costs a copy into the frame, two
//! through the kernel and one more into a Python `bytes`).
//!
//! Two areas per worker, one per direction, each an anonymous `memfd`
//! (not a file under `/dev/shm`: containers get 64 MiB there by default,
//! and nothing is left behind when a process dies). Each side allocates in
//! the area it writes and frees a region when the other side sends it back
//! (a `RELEASE` frame): the worker keeps a request's region as long as an
//! array built over it lives. A tensor that does not fit goes inside the
//! frame as before.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// Regions start at multiples of this (numpy's arrays over them are
/// aligned for every datatype, and no two regions share a cache line).
const ALIGN: usize = 64;
/// Tensors smaller than this travel inside the frame: a region costs a
/// `RELEASE` frame and allocator work, more than copying a few KiB.
pub(crate) const MIN_SHARED: usize = 4096;

/// One direction's area, mapped in this process.
pub(crate) struct Area {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
    free: Mutex<Regions>,
}

// The mapping is plain memory; who may touch which region is the
// allocator's to say (see `Area::alloc`).
unsafe impl Send for Area {}
unsafe impl Sync for Area {}

impl Area {
    /// A new area of `len` bytes (pages are only backed once written).
    pub(crate) fn new(name: &str, len: usize) -> std::io::Result<Area> {
        let name = std::ffi::CString::new(name).expect("no NUL in area names");
        // SAFETY: a plain system call; the descriptor is owned from here on.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `fd` is a valid descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: maps the whole file, shared; unmapped in `drop`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Area {
            fd,
            base: base.cast(),
            len,
            free: Mutex::new(Regions::new(len)),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A region of `len` bytes for this side to write, or `None` when the
    /// area has no room (the caller sends the bytes inside the frame).
    pub(crate) fn alloc(&self, len: usize) -> Option<usize> {
        self.free.lock().expect("area lock").alloc(len)
    }

    /// Gives a region back (once the other side released it); unknown
    /// offsets are ignored: a confused peer cannot corrupt the allocator.
    pub(crate) fn free(&self, offset: usize) {
        self.free.lock().expect("area lock").free(offset);
    }

    /// Copies `bytes` into the region at `offset`, which this side
    /// allocated and the other side does not read until told about it.
    pub(crate) fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len, "region out of the area");
        // SAFETY: in bounds (checked), and the region is this side's alone
        // until it is sent.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(offset), bytes.len()) }
    }

    /// The bytes of a region the other side wrote and handed over; `None`
    /// when the range is not inside the area.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds; the writer does not touch a region it handed
        // over until this side releases it.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(offset), len) })
    }

    /// How many bytes are allocated now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.free.lock().expect("area lock").used.values().sum()
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no slice of it
        // outlives the area (they borrow it).
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

/// First-fit allocation over an area: free ranges by offset, coalesced.
struct Regions {
    free: BTreeMap<usize, usize>,
    used: HashMap<usize, usize>,
}

impl Regions {
    fn new(len: usize) -> Regions {
        Regions {
            free: BTreeMap::from([(0, len)]),
            used: HashMap::new(),
        }
    }

    fn alloc(&mut self, len: usize) -> Option<usize> {
        let len = len.max(1).checked_next_multiple_of(ALIGN)?;
        let (&offset, &room) = self.free.iter().find(|(_, &room)| room >= len)?;
        self.free.remove(&offset);
        if room > len {
            self.free.insert(offset + len, room - len);
        }
        self.used.insert(offset, len);
        Some(offset)
    }

    fn free(&mut self, offset: usize) {
        let Some(len) = self.used.remove(&offset) else {
            return;
        };
        let (mut start, mut end) = (offset, offset + len);
        if let Some((&before, &before_len)) = self.free.range(..offset).next_back() {
            if before + before_len == offset {
                self.free.remove(&before);
                start = before;
            }
        }
        if let Some(after_len) = self.free.remove(&end) {
            end += after_len;
        }
        self.free.insert(start, end - start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_aligned_reused_and_coalesced() {
        let mut r = Regions::new(1024);
        let a = r.alloc(10).unwrap();
        let b = r.alloc(100).unwrap();
        let c = r.alloc(64).unwrap();
        assert_eq!((a, b, c), (0, 64, 192));
        assert_eq!(r.alloc(1024), None, "no room");
        r.free(b);
        assert_eq!(r.alloc(128), Some(64), "first fit reuses the hole");
        r.free(64);
        r.free(a);
        r.free(c);
        r.free(c); // twice, or unknown: ignored
        r.free(7);
        assert_eq!(r.free, BTreeMap::from([(0, 1024)]), "back to one range");
        assert_eq!(r.alloc(1024), Some(0));
    }

    #[test]
    fn areas_write_and_read_back() {
        let area = Area::new("test", 1 << 20).unwrap();
        let at = area.alloc(5).unwrap();
        area.write(at, b"hello");
        assert_eq!(area.slice(at, 5), Some(&b"hello"[..]));
        assert_eq!(area.slice(area.len() - 1, 2), None);
        assert_eq!(area.in_use(), 64);
        area.free(at);
        assert_eq!(area.in_use(), 0);
    }
}
