"""Shared memory with the server, for tensor contents (the Rust side:
`src/shm.rs`, whose docs say why).

Two areas, mapped from the descriptors the server leaves open for us
(`MLSERVER_RS_SHM`): requests, which the server writes, and replies, which
we write. A request's region goes back to the server (a RELEASE frame) once
nothing here uses it: at the end of the call, or, when the model kept an
array built over it, once that array is gone. A reply's region comes back
to us the same way once the server has read it.
"""

import contextlib
import mmap
import os
import weakref

from . import wire

# As the server: smaller tensors stay inside the frame.
MIN_SHARED = 4096
_ALIGN = 64


class Areas:
    def __init__(self, spec: str):
        (req_fd, req_len), (rep_fd, rep_len) = (
            tuple(int(v) for v in part.split(":")) for part in spec.split(",")
        )
        self.requests = mmap.mmap(req_fd, req_len)
        self.replies = mmap.mmap(rep_fd, rep_len)
        os.close(req_fd)
        os.close(rep_fd)
        # Regions of the request area we are done with, for the server.
        self.released = []
        # First fit over the reply area: free ranges by offset, and the
        # length of each region handed out.
        self.free = [(0, rep_len)]
        self.used = {}

    def request_array(self, numpy, dtype, count: int, offset: int):
        """An array over a request region (no copy), whose region goes back
        to the server when the array and every view of it are gone."""
        array = numpy.frombuffer(self.requests, dtype, count, offset)
        weakref.finalize(array, self.released.append, offset)
        return array

    @contextlib.contextmanager
    def request_view(self, offset: int, length: int):
        """A request region, read in place for the `with` block; the region
        is done with after it."""
        view = memoryview(self.requests)[offset : offset + length]
        try:
            yield view
        finally:
            view.release()
            self.released.append(offset)

    def request_bytes(self, offset: int, length: int) -> bytes:
        """A request region's bytes, copied; the region is done with."""
        data = self.requests[offset : offset + length]
        self.released.append(offset)
        return data

    def take_released(self):
        """A RELEASE frame for the regions done with since the last one, or
        None."""
        if not self.released:
            return None
        offsets, self.released = self.released, []
        return wire.frame(wire.RELEASE, 0, wire.offsets(offsets))

    def alloc(self, length: int):
        """An offset in the reply area for `length` bytes, or None (no room:
        the bytes go inside the frame)."""
        need = -(-max(length, 1) // _ALIGN) * _ALIGN
        for i, (offset, room) in enumerate(self.free):
            if room >= need:
                if room == need:
                    del self.free[i]
                else:
                    self.free[i] = (offset + need, room - need)
                self.used[offset] = need
                return offset
        return None

    def release(self, offset: int) -> None:
        """The server is done with a reply region (unknown ones: ignored)."""
        length = self.used.pop(offset, None)
        if length is None:
            return
        free = self.free
        free.append((offset, length))
        free.sort()
        merged = []
        for start, room in free:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + room)
            else:
                merged.append((start, room))
        self.free = merged


def from_environment():
    spec = os.environ.get("MLSERVER_RS_SHM")
    return Areas(spec) if spec else None
