"""The socket to the server: frames cut from what arrives and dispatched
in order (`calls.py`), replies written back in batches, Python's log records
forwarded to the server's log."""

import asyncio
import json
import logging
import math
import os
import struct
import time

from . import fast, shm, wire
from .calls import Calls

HEADER, LENGTH = wire.HEADER, wire.LENGTH


class _ServerLog(logging.Handler):
    """Python log records (the `mlserver` logger's, the model's own) go to
    the server's log as LOG frames, from whichever thread logs."""

    def __init__(self, writer, loop):
        super().__init__()
        self.writer = writer
        self.loop = loop

    def emit(self, record):
        try:
            message = self.format(record)
            body = json.dumps(
                {"level": record.levelname, "logger": record.name, "message": message}
            ).encode()
            self.loop.call_soon_threadsafe(
                self.writer.write, wire.frame(wire.LOG, 0, body)
            )
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _forward_logs(writer, loop) -> None:
    """As MLServer configures its workers: the `mlserver` logger at INFO
    (DEBUG with `debug`); other loggers at their own levels (the root's
    default, WARNING, lets a model's warnings and errors through, as
    Python's last-resort handler would print them)."""
    handler = _ServerLog(writer, loop)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(handler)
    level = os.environ.get("MLSERVER_RS_LOG_LEVEL", "INFO")
    logging.getLogger("mlserver").setLevel(level)


# While a batch of frames is handled, replies are sent every this many
# frames, or as soon as this many bytes are held. sum16 REST at c=32,
# req/s: 16,300-17,100 when uvloop sends them at the end of the batch
# (every frame of a batch is handled before its first reply leaves); 17,700
# every frame (a system call each); 20,800-21,700 every 4; 19,900-20,200
# every 8.
_FLUSH_FRAMES = 4
_FLUSH_BYTES = 64 * 1024


class _Writer:
    """Writes frames to the server. While a batch of frames is read, replies
    are held and sent every few frames in one system call: uvloop would
    send them all at the end of the batch, and meanwhile the server, with
    nothing to do, waits."""

    __slots__ = ("transport", "fd", "held", "held_bytes", "holding", "frames")

    def __init__(self, transport):
        self.transport = transport
        self.fd = transport.get_extra_info("socket").fileno()
        self.held = []
        self.held_bytes = 0
        self.holding = False
        self.frames = 0

    def write(self, data: bytes) -> None:
        if self.holding:
            self.held.append(data)
            self.held_bytes += len(data)
        else:
            self.transport.write(data)

    def hold(self) -> None:
        self.holding = True
        self.frames = 0

    def release(self) -> None:
        self.flush()
        self.holding = False

    def flush(self) -> None:
        self.frames = 0
        if not self.held:
            return
        data = b"".join(self.held) if len(self.held) > 1 else self.held[0]
        self.held.clear()
        self.held_bytes = 0
        sent = 0
        # Straight to the socket when nothing waits in the transport's
        # buffer (else the bytes would overtake it); the rest through it.
        if not self.transport.get_write_buffer_size():
            try:
                sent = os.write(self.fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport reports a dead socket itself
        if sent < len(data):
            self.transport.write(data[sent:] if sent else data)


# Busy polling (`worker_busy_poll_us`): after answering, the worker reads its
# socket for this long before going back to the event loop to sleep, when
# requests have lately come closer together than that. Sleeping costs the
# next request a wake-up, 40-80 µs on a VM, more than a small call's work.
_BUSY_POLL = int(os.environ.get("MLSERVER_RS_BUSY_POLL_US", "0") or 0) / 1e6
# The longest the event loop waits while frames keep coming in a poll.
_BUSY_POLL_TURN = 0.002


class _Connection(asyncio.Protocol):
    """The socket to the server: frames are cut from what arrives and
    dispatched at once, in order. A protocol rather than a stream reader:
    no task wakes up and no coroutine resumes per frame, which cost as much
    as reading a small request."""

    def __init__(self, closed):
        self.closed = closed
        self.worker = None
        # A frame not yet whole, and how many bytes it needs to be.
        self.pending = bytearray()
        self.needed = HEADER.size
        # The socket's descriptor, for busy polling (None: no polling).
        self.transport = None
        self.fd = None
        # When the last answer left (None: not yet), and the recent gaps
        # between it and the next frame (an average, in seconds).
        self.idle_since = None
        self.gap = math.inf

    def connection_made(self, transport):
        self.worker = Calls(_Writer(transport), shm.from_environment() if fast.ENABLED else None)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else None

    def data_received(self, data):
        arrived = time.perf_counter()
        if self.idle_since is not None:
            self._note_gap(arrived - self.idle_since)
        self._consume(data)
        if _BUSY_POLL and self.gap < _BUSY_POLL and self.fd is not None:
            self._busy_poll(arrived)
        self.idle_since = time.perf_counter()

    def _note_gap(self, gap):
        self.gap = gap if self.gap == math.inf else (self.gap + gap) / 2

    def _busy_poll(self, started):
        """Reads the socket without sleeping until no frame has come for
        `_BUSY_POLL`: a client sending its next request right after our
        answer finds us awake. Only while nothing else needs the event loop
        (no call suspended, no stream open, nothing queued to write) and for at most
        `_BUSY_POLL_TURN` in all. A poll that catches nothing counts as a
        long gap, so polling stops until requests come close again: an idle
        or slow stream of requests costs at most one poll."""
        perf = time.perf_counter
        waiting_since = perf()
        while True:
            now = perf()
            if now - waiting_since >= _BUSY_POLL:
                self._note_gap(2 * _BUSY_POLL)
                return
            if (
                now - started >= _BUSY_POLL_TURN
                or self.worker.calls
                or self.worker.streams
                or self.transport.get_write_buffer_size()
                or self.pending
            ):
                return
            try:
                more = os.read(self.fd, 1 << 18)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not more:
                # End of stream: left for the event loop to see.
                return
            self._note_gap(perf() - waiting_since)
            self._consume(more)
            waiting_since = perf()

    def _consume(self, data):
        if self.pending:
            self.pending += data
            if len(self.pending) < self.needed:
                return
            data = bytes(self.pending)
            self.pending = bytearray()
        offset, end = 0, len(data)
        writer = self.worker.writer
        writer.hold()
        try:
            while end - offset >= HEADER.size:
                length, kind, call = HEADER.unpack_from(data, offset)
                stop = offset + 4 + length
                if stop > end:
                    break
                body = data[offset + HEADER.size : stop]
                offset = stop
                self.worker.dispatch(kind, call, body)
                writer.frames += 1
                if writer.frames >= _FLUSH_FRAMES or writer.held_bytes >= _FLUSH_BYTES:
                    writer.flush()
        except BaseException as error:  # noqa: B036 - SystemExit from a model
            # As when the loop read frames: the worker stops with it.
            if not self.closed.done():
                self.closed.set_exception(error)
            return
        finally:
            writer.release()
        if offset < end:
            self.pending += data[offset:]
            self.needed = (
                4 + LENGTH.unpack_from(self.pending)[0]
                if len(self.pending) >= HEADER.size
                else HEADER.size
            )

    def connection_lost(self, error):
        if not self.closed.done():
            self.closed.set_result(None)


async def main(socket_path: str) -> None:
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    transport, _ = await loop.create_unix_connection(
        lambda: _Connection(closed), socket_path
    )
    # The first frame says who we are, so the server can match the socket
    # to the process it started.
    transport.write(wire.frame(wire.OK, 0, struct.pack("<Q", os.getpid())))
    _forward_logs(transport, loop)
    await closed
