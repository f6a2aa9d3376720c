//! One Python worker process and the socket the server talks to it over.
//!
//! Calls are multiplexed: each carries an id, replies come back in any
//! order. When the process dies, every call in flight fails at once with
//! [`MLServerError::WorkerLost`] naming the process and how it ended.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mlserver_runtime::MLServerError;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch, Semaphore};
use tracing::{debug, warn};

use crate::frame;
use crate::shm::{self, Area};

/// How to start a worker.
#[derive(Debug, Clone)]
pub(crate) struct Spawn {
    pub python: PathBuf,
    /// The worker package, run with `-m` (its folder leads `python_path`).
    pub module: &'static str,
    /// Where the sockets go (short: Unix socket paths are limited).
    pub socket_dir: PathBuf,
    /// Prepended to `PYTHONPATH`: the models folder and the working
    /// directory, as `mlserver start` puts them first on `sys.path`.
    pub python_path: Vec<PathBuf>,
    pub start_timeout: Duration,
    /// The `mlserver` logger at DEBUG rather than INFO.
    pub debug: bool,
    /// See `PythonConfig::busy_poll`.
    pub busy_poll: Duration,
    /// See `PythonConfig::production`.
    pub production: bool,
    /// See `PythonConfig::fast_paths`.
    pub fast_paths: bool,
    /// See `PythonConfig::shared_memory`.
    pub shared_memory: usize,
    /// See `PythonConfig::metrics_dir`.
    pub metrics_dir: Option<PathBuf>,
}

type Reply = Result<Bytes, MLServerError>;

/// Who waits for a call's replies: one reply, or a stream of them.
enum Waiter {
    Once(oneshot::Sender<Reply>),
    Stream {
        /// Unbounded, but the worker never has more than
        /// [`frame::STREAM_WINDOW`] items in it (see [`frame::CREDIT`]).
        replies: tokio::sync::mpsc::UnboundedSender<Reply>,
        /// The request items the worker is ready to take.
        credits: Arc<Semaphore>,
    },
}

impl Waiter {
    fn finish(self, reply: Reply) {
        match self {
            Waiter::Once(tx) => {
                let _ = tx.send(reply);
            }
            // A stream ends when its sender drops; only errors are items.
            Waiter::Stream { replies, credits } => {
                // Whoever waits to send a request item gives up.
                credits.close();
                if reply.is_err() {
                    let _ = replies.send(reply);
                }
            }
        }
    }
}

/// An open stream call, from [`Worker::open_stream`].
pub(crate) struct OpenStream {
    pub call: u64,
    /// The stream's responses; it ends with the stream. Grant the worker
    /// one [`frame::CREDIT`] per response taken.
    pub replies: tokio::sync::mpsc::UnboundedReceiver<Reply>,
    /// Take (and forget) one permit before sending each request item; it
    /// closes when the stream ends.
    pub credits: Arc<Semaphore>,
}

pub(crate) struct Worker {
    pub pid: u32,
    /// Whole frames for the writer task: a caller that is cancelled can
    /// never leave half a frame on the socket.
    outbox: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_call: AtomicU64,
    alive: AtomicBool,
    in_flight: AtomicUsize,
    /// Models loaded in this process: `(name, version)`.
    loaded: Mutex<HashSet<(String, String)>>,
    exited: watch::Receiver<bool>,
    child: tokio::sync::Mutex<Option<Child>>,
    /// Tensor contents to and from the worker (see [`shm`]); `None` with
    /// the fast paths off, where `memfd` is not available, and once the
    /// process is gone (replies still being read keep their area).
    shared: Mutex<Option<Arc<Shared>>>,
    /// Where its `prometheus_client` files are (`PythonConfig::metrics_dir`).
    metrics_dir: Option<PathBuf>,
}

/// The two areas of a worker: requests (the server writes) and replies
/// (the worker writes).
pub(crate) struct Shared {
    pub requests: Area,
    pub replies: Area,
}

impl Shared {
    /// Two areas of `bytes` each: room for the tensors of many calls in
    /// flight (one that does not fit travels inside its frame).
    fn new(n: u64, bytes: usize) -> Option<Shared> {
        let made = Area::new(&format!("mlserver-rs-w{n}-requests"), bytes).and_then(|requests| {
            Ok(Shared {
                requests,
                replies: Area::new(&format!("mlserver-rs-w{n}-replies"), bytes)?,
            })
        });
        match made {
            Ok(shared) => Some(shared),
            Err(e) => {
                warn!(
                    "no shared memory for the Python worker ({e}): tensors go through its socket"
                );
                None
            }
        }
    }

    /// The worker's `MLSERVER_RS_SHM`: each area's descriptor and length.
    fn describe(&self) -> String {
        format!(
            "{}:{},{}:{}",
            self.requests.fd(),
            self.requests.len(),
            self.replies.fd(),
            self.replies.len()
        )
    }
}

/// Regions of the request area written for one call, freed if the call is
/// never sent (the worker releases those it received).
pub(crate) struct Lent {
    shared: Option<Arc<Shared>>,
    offsets: Vec<usize>,
}

impl Lent {
    pub(crate) fn new(shared: Option<Arc<Shared>>) -> Self {
        Lent {
            shared,
            offsets: Vec::new(),
        }
    }

    /// Copies `bytes` into a new region; its offset, or `None` (no area,
    /// too small to be worth it, or no room).
    pub(crate) fn lend(&mut self, bytes: &[u8]) -> Option<usize> {
        let shared = self
            .shared
            .as_ref()
            .filter(|_| bytes.len() >= shm::MIN_SHARED)?;
        let area = &shared.requests;
        let offset = area.alloc(bytes.len())?;
        area.write(offset, bytes);
        self.offsets.push(offset);
        Some(offset)
    }

    fn sent(mut self) {
        self.offsets.clear();
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            self.offsets.iter().for_each(|&o| shared.requests.free(o));
        }
    }
}

static SOCKETS: AtomicU64 = AtomicU64::new(0);

impl Worker {
    /// Starts a worker and waits until it has connected.
    pub(crate) async fn spawn(spec: &Spawn) -> Result<Arc<Worker>, MLServerError> {
        let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
        let socket = spec.socket_dir.join(format!("w{n}.sock"));
        let shared = if spec.fast_paths && spec.shared_memory > 0 {
            Shared::new(n, spec.shared_memory)
        } else {
            None
        };
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).map_err(|e| {
            MLServerError::internal(format!(
                "cannot create the worker socket {}: {e}",
                socket.display()
            ))
        })?;
        let mut command = Command::new(&spec.python);
        command
            .arg("-m")
            .arg(spec.module)
            .arg(&socket)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONPATH", python_path(&spec.python_path))
            .env(
                "MLSERVER_RS_LOG_LEVEL",
                if spec.debug { "DEBUG" } else { "INFO" },
            )
            .env(
                "MLSERVER_RS_BUSY_POLL_US",
                spec.busy_poll.as_micros().to_string(),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if spec.production {
            command.env("MLSERVER_RS_PRODUCTION", "1");
        }
        command.env(
            "MLSERVER_RS_FAST_PATHS",
            if spec.fast_paths { "1" } else { "0" },
        );
        if let Some(shared) = &shared {
            command.env("MLSERVER_RS_SHM", shared.describe());
            let fds = [shared.requests.fd(), shared.replies.fd()];
            // SAFETY: runs in the child between fork and exec, and only
            // calls `fcntl`, which is async-signal-safe: the two areas'
            // descriptors (close-on-exec in this process, so no other
            // child inherits them) stay open in the worker.
            unsafe {
                command.pre_exec(move || {
                    for fd in fds {
                        if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        // MLServer's `configure_metrics`: the folder made, then named to
        // prometheus_client. A folder that cannot be made (a read-only
        // working directory) costs the files, not the worker.
        let metrics_dir = spec.metrics_dir.as_ref().filter(|dir| {
            std::fs::create_dir_all(dir)
                .map_err(|e| {
                    warn!(
                        "metrics_dir {}: {e}; the Python workers keep their metrics in memory",
                        dir.display()
                    )
                })
                .is_ok()
        });
        if let Some(dir) = metrics_dir {
            command.env("PROMETHEUS_MULTIPROC_DIR", dir);
        }
        if let Some(path) = path_with_environment(&spec.python) {
            command.env("PATH", path);
        }
        // Bytecode of the models' own modules goes beside the sockets, not
        // next to the modules: models folders are read-only in Kubernetes
        // (KServe's storage volume, Seldon's agent folder, image volumes)
        // and belong to whoever put the model there.
        if std::env::var_os("PYTHONPYCACHEPREFIX").is_none() {
            command.env("PYTHONPYCACHEPREFIX", spec.socket_dir.join("pycache"));
        }
        let mut child = command.spawn().map_err(|e| {
            MLServerError::internal(format!(
                "cannot start the Python interpreter {}: {e} (set MLSERVER_PYTHON to the python of an environment with `mlserver` installed)",
                spec.python.display()
            ))
        })?;
        let pid = child.id().unwrap_or_default();

        let accepted = tokio::select! {
            accepted = tokio::time::timeout(spec.start_timeout, listener.accept()) => accepted,
            status = child.wait() => {
                let _ = std::fs::remove_file(&socket);
                return Err(MLServerError::internal(format!(
                    "the Python worker ({}) exited before connecting: {} (is `mlserver` installed in that environment?)",
                    spec.python.display(),
                    status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
                )));
            }
        };
        let _ = std::fs::remove_file(&socket);
        let stream = match accepted {
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => return Err(MLServerError::internal(format!("worker socket: {e}"))),
            Err(_) => {
                let _ = child.kill().await;
                return Err(MLServerError::internal(format!(
                    "the Python worker did not connect within {:?}",
                    spec.start_timeout
                )));
            }
        };
        let (mut reader, writer) = stream.into_split();
        match frame::read(&mut reader).await {
            Ok(Some(hello)) if hello.kind == frame::OK => {}
            other => {
                let _ = child.kill().await;
                return Err(MLServerError::internal(format!(
                    "the Python worker sent no greeting: {other:?}"
                )));
            }
        }
        let (exited_tx, exited) = watch::channel(false);
        let (outbox, frames) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(write_frames(writer, frames));
        let worker = Arc::new(Worker {
            pid,
            outbox: Mutex::new(Some(outbox)),
            pending: Mutex::default(),
            next_call: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            loaded: Mutex::default(),
            exited,
            child: tokio::sync::Mutex::new(Some(child)),
            shared: Mutex::new(shared.map(Arc::new)),
            metrics_dir: metrics_dir.cloned(),
        });
        debug!(pid, "Python worker connected");
        tokio::spawn(read_replies(worker.clone(), reader, exited_tx));
        Ok(worker)
    }

    /// The shared areas, when this worker has them.
    pub(crate) fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.lock().expect("shared lock").clone()
    }

    /// Tells the worker it may reuse a region of its reply area.
    pub(crate) fn release_reply(&self, offset: usize) {
        let outbox = self.outbox.lock().expect("outbox lock");
        if let Some(tx) = outbox.as_ref() {
            let _ = tx.send(frame::encode(
                frame::RELEASE,
                0,
                &(offset as u64).to_le_bytes(),
            ));
        }
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn has(&self, key: &(String, String)) -> bool {
        self.loaded.lock().expect("loaded lock").contains(key)
    }

    /// The models loaded in this process.
    pub(crate) fn loaded(&self) -> Vec<(String, String)> {
        self.loaded
            .lock()
            .expect("loaded lock")
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn mark_loaded(&self, key: (String, String), loaded: bool) {
        let mut set = self.loaded.lock().expect("loaded lock");
        if loaded {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }

    /// Resolves once the process is gone.
    pub(crate) async fn exited(&self) {
        let mut rx = self.exited.clone();
        let _ = rx.wait_for(|gone| *gone).await;
    }

    /// Registers a waiter under a new call id (refused once the worker is
    /// gone: its pending calls have been failed already).
    fn register(&self, waiter: Waiter) -> Result<u64, MLServerError> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending.lock().expect("pending lock");
        if !self.alive() {
            return Err(self.lost("it is restarting"));
        }
        pending.insert(call, waiter);
        Ok(call)
    }

    /// Queues one frame of call `call` (whole: see `outbox`). A frame too
    /// large for the protocol's 32-bit length, or a closed socket, fails
    /// the call's waiter with the reason.
    pub(crate) fn send(&self, kind: u8, call: u64, body: &[u8]) -> Result<(), MLServerError> {
        let error = if body.len() > frame::MAX_BODY {
            MLServerError::with_status(
                413,
                format!(
                    "a message of {} bytes is larger than the Python worker protocol allows ({} bytes)",
                    body.len(),
                    frame::MAX_BODY
                ),
            )
        } else {
            let outbox = self.outbox.lock().expect("outbox lock");
            match outbox.as_ref() {
                Some(tx) if tx.send(frame::encode(kind, call, body)).is_ok() => return Ok(()),
                _ => self.lost("its socket is closed"),
            }
        };
        let waiter = self.pending.lock().expect("pending lock").remove(&call);
        if let Some(waiter) = waiter {
            waiter.finish(Err(error.clone()));
        }
        Err(error)
    }

    /// One call: sends `body` as a `kind` frame and waits for the reply.
    pub(crate) async fn call(&self, kind: u8, body: &[u8]) -> Result<Bytes, MLServerError> {
        self.call_lending(kind, body, Lent::new(None)).await
    }

    /// [`Worker::call`] for a body that refers to regions of the request
    /// area (`lent`), which the worker releases once done with them.
    pub(crate) async fn call_lending(
        &self,
        kind: u8,
        body: &[u8],
        lent: Lent,
    ) -> Result<Bytes, MLServerError> {
        let (tx, rx) = oneshot::channel();
        let call = self.register(Waiter::Once(tx))?;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _counted = Decrement(&self.in_flight);
        // A cancelled caller must not leave its waiter behind, nor its
        // work running in the worker.
        let _forget = Forget { worker: self, call };
        self.send(kind, call, body)?;
        lent.sent();
        rx.await
            .unwrap_or_else(|_| Err(self.lost("it exited during the call")))
    }

    /// Opens a stream call (`STREAM_OPEN` with `body`).
    pub(crate) async fn open_stream(&self, body: &[u8]) -> Result<OpenStream, MLServerError> {
        let (tx, replies) = tokio::sync::mpsc::unbounded_channel();
        let credits = Arc::new(Semaphore::new(frame::STREAM_WINDOW as usize));
        let call = self.register(Waiter::Stream {
            replies: tx,
            credits: credits.clone(),
        })?;
        self.send(frame::STREAM_OPEN, call, body)?;
        Ok(OpenStream {
            call,
            replies,
            credits,
        })
    }

    fn lost(&self, why: &str) -> MLServerError {
        MLServerError::WorkerLost(format!(
            "Python worker (pid {}) unavailable: {why}",
            self.pid
        ))
    }

    /// Stops the process: closes its socket (it exits at end of stream),
    /// waits up to `timeout`, then kills it.
    pub(crate) async fn stop(&self, timeout: Duration) {
        // Closing the outbox ends the writer task, which shuts the socket's
        // write side: the worker reads end of stream and exits.
        self.outbox.lock().expect("outbox lock").take();
        let mut child = self.child.lock().await;
        if let Some(child) = child.as_mut() {
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(_) => debug!(pid = self.pid, "Python worker stopped"),
                Err(_) => {
                    warn!(
                        pid = self.pid,
                        "Python worker did not stop in {timeout:?}; killing it"
                    );
                    let _ = child.kill().await;
                }
            }
        }
        self.remove_metric_files();
    }

    /// MLServer's `stop_metrics`: the process's `*_{pid}.db` files go with
    /// it (a later worker with the same pid must not add to its counts).
    fn remove_metric_files(&self) {
        let Some(dir) = &self.metrics_dir else {
            return;
        };
        let suffix = format!("_{}.db", self.pid);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(&suffix) {
                if let Err(e) = std::fs::remove_file(entry.path()) {
                    warn!(
                        pid = self.pid,
                        "cannot remove {}: {e}",
                        entry.path().display()
                    );
                }
            }
        }
    }
}

/// Removes a call's waiter when its caller stops waiting; when the reply
/// had not come yet, tells the worker to cancel the call.
struct Forget<'a> {
    worker: &'a Worker,
    call: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let waiting = self
            .worker
            .pending
            .lock()
            .expect("pending lock")
            .remove(&self.call)
            .is_some();
        if waiting {
            let outbox = self.worker.outbox.lock().expect("outbox lock");
            if let Some(tx) = outbox.as_ref() {
                let _ = tx.send(frame::encode(frame::CANCEL, self.call, b""));
            }
        }
    }
}

/// Frames queued together leave in one write up to this size: under load
/// the worker then reads many requests per wakeup, where a write each
/// costs it a read and an event-loop turn each.
const WRITE_BATCH: usize = 64 * 1024;

/// Writes queued frames in order until the outbox closes or the socket fails.
/// Small frames queued together leave in one write (a large one is never
/// copied to join them).
async fn write_frames(
    mut writer: OwnedWriteHalf,
    mut frames: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut held = None;
    loop {
        let mut bytes = match held.take() {
            Some(frame) => frame,
            None => match frames.recv().await {
                Some(frame) => frame,
                None => break,
            },
        };
        while bytes.len() < WRITE_BATCH {
            match frames.try_recv() {
                Ok(next) if next.len() <= WRITE_BATCH - bytes.len() => {
                    bytes.extend_from_slice(&next)
                }
                Ok(next) => {
                    held = Some(next);
                    break;
                }
                Err(_) => break,
            }
        }
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Delivers replies until the stream ends, then fails whatever is pending
/// with the reason the process ended.
async fn read_replies(
    worker: Arc<Worker>,
    reader: tokio::net::unix::OwnedReadHalf,
    exited: watch::Sender<bool>,
) {
    // Replies that arrive together are read together, not two reads each.
    let mut reader = tokio::io::BufReader::with_capacity(WRITE_BATCH, reader);
    let end = loop {
        match frame::read(&mut reader).await {
            Ok(Some(f)) if f.kind == frame::ITEM => {
                let pending = worker.pending.lock().expect("pending lock");
                if let Some(Waiter::Stream { replies, .. }) = pending.get(&f.call) {
                    let _ = replies.send(Ok(f.body));
                }
            }
            Ok(Some(f)) if f.kind == frame::LOG => log_record(worker.pid, &f.body),
            Ok(Some(f)) if f.kind == frame::RELEASE => {
                if let Some(shared) = worker.shared() {
                    f.body
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
                        .for_each(|offset| shared.requests.free(offset));
                }
            }
            Ok(Some(f)) if f.kind == frame::CREDIT => {
                let pending = worker.pending.lock().expect("pending lock");
                if let (Some(Waiter::Stream { credits, .. }), Some(n)) =
                    (pending.get(&f.call), frame::credit_of(&f.body))
                {
                    // Bounded by Semaphore::MAX_PERMITS: a worker granting
                    // absurdly many must not make the server panic.
                    let room = Semaphore::MAX_PERMITS.saturating_sub(credits.available_permits());
                    credits.add_permits((n as usize).min(room));
                }
            }
            Ok(Some(f)) => {
                let reply = match f.kind {
                    frame::OK => Ok(f.body),
                    frame::ERROR => Err(error_from_worker(&f.body)),
                    other => Err(MLServerError::internal(format!(
                        "unexpected frame kind {other} from the Python worker"
                    ))),
                };
                let waiter = worker.pending.lock().expect("pending lock").remove(&f.call);
                if let Some(waiter) = waiter {
                    waiter.finish(reply);
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    worker.alive.store(false, Ordering::Release);
    // The process is gone: its areas go once nothing reads them.
    worker.shared.lock().expect("shared lock").take();
    // How it ended, for the error every pending call gets.
    let status = {
        let mut child = worker.child.lock().await;
        match child.as_mut() {
            Some(c) => tokio::time::timeout(Duration::from_secs(5), c.wait())
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        }
    };
    let how = match (status, end) {
        (Some(s), _) => describe_exit(s),
        (None, Some(e)) => format!("its socket failed: {e}"),
        (None, None) => "it closed its socket".to_owned(),
    };
    let drained: Vec<_> = std::mem::take(&mut *worker.pending.lock().expect("pending lock"))
        .into_values()
        .collect();
    if !drained.is_empty() {
        warn!(
            pid = worker.pid,
            "Python worker died ({how}); failing {} call(s) in flight",
            drained.len()
        );
    }
    for waiter in drained {
        waiter.finish(Err(MLServerError::WorkerLost(format!(
            "the Python worker (pid {}) running this request died: {how}",
            worker.pid
        ))));
    }
    worker.remove_metric_files();
    let _ = exited.send(true);
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => "killed by SIGKILL (out of memory?)".to_owned(),
        Some(sig) => format!("killed by signal {sig}"),
        None => format!("exited with {status}"),
    }
}

/// Maps a worker's `{"status", "message"}` error to the server's error,
/// keeping MLServer's status codes (an `MLServerError` raised in Python
/// carries its own).
fn error_from_worker(body: &[u8]) -> MLServerError {
    #[derive(serde::Deserialize)]
    struct WorkerError {
        status: u16,
        message: String,
    }
    match serde_json::from_slice::<WorkerError>(body) {
        Ok(e) => match e.status {
            400 => MLServerError::Inference(e.message),
            503 => MLServerError::Unavailable(e.message),
            500 => MLServerError::Internal(e.message),
            // The model chose it (`MLServerError(msg, status_code=...)`).
            code => MLServerError::with_status(code, e.message),
        },
        Err(_) => MLServerError::internal(format!(
            "unreadable error from the Python worker: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

/// A Python log record from a worker, into the server's log at its level.
fn log_record(pid: u32, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Record {
        level: String,
        logger: String,
        message: String,
    }
    let Ok(r) = serde_json::from_slice::<Record>(body) else {
        warn!(pid, "unreadable log record from the Python worker");
        return;
    };
    let (logger, message) = (r.logger.as_str(), r.message.as_str());
    match r.level.as_str() {
        "CRITICAL" | "ERROR" => tracing::error!(pid, logger, "{message}"),
        "WARNING" => tracing::warn!(pid, logger, "{message}"),
        "INFO" => tracing::info!(pid, logger, "{message}"),
        _ => tracing::debug!(pid, logger, "{message}"),
    }
}

fn python_path(first: &[PathBuf]) -> std::ffi::OsString {
    let mut parts: Vec<PathBuf> = first.to_vec();
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        parts.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(
        parts
            .iter()
            .map(PathBuf::as_path)
            .filter(|p| p != &Path::new("")),
    )
    .unwrap_or_default()
}

/// `PATH` with the environment's `bin/` first, as activating it would (and
/// as MLServer starts workers of an environment): tools a model runs
/// (`ffmpeg`, a conda environment's own binaries) come from it. `None` for
/// an interpreter found through `PATH` itself (`python3`).
fn path_with_environment(python: &Path) -> Option<std::ffi::OsString> {
    let bin = python
        .parent()
        .filter(|b| python.is_absolute() && b.is_dir())?;
    let mut parts = vec![bin.to_path_buf()];
    if let Some(existing) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&existing).filter(|p| p != bin));
    }
    std::env::join_paths(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_find_their_environment_first_on_path() {
        let env = tempfile::tempdir().unwrap();
        std::fs::create_dir(env.path().join("bin")).unwrap();
        let path = path_with_environment(&env.path().join("bin/python")).unwrap();
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, env.path().join("bin"));
        assert_eq!(path_with_environment(Path::new("python3")), None);
    }

    #[test]
    fn worker_errors_keep_their_status_class() {
        let e = error_from_worker(br#"{"status": 400, "message": "bad input"}"#);
        assert!(matches!(e, MLServerError::Inference(ref m) if m == "bad input"));
        let e = error_from_worker(br#"{"status": 500, "message": "ZeroDivisionError: x"}"#);
        assert!(matches!(e, MLServerError::Internal(_)));
        assert!(matches!(
            error_from_worker(b"junk"),
            MLServerError::Internal(_)
        ));
    }
}
