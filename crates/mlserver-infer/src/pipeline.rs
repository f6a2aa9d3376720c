//! The run: a reader cutting the input into batches, `--workers` workers
//! each sending one batch at a time (with retries and the batch interval),
//! and a writer appending each batch's lines to the output file as the
//! batches finish, as MLServer's producer, consumers and finalizer do (with
//! the same queue sizes: twice the number of workers).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::batch::{self, Item, LineKind, OutputLine};
use crate::client::{parse_headers, Answer, Client, SendError};
use crate::json::{py_float_repr, py_str_repr};
use crate::{BatchError, InferArgs, Summary, Transport};

/// MLServer logs the count of written lines every this many.
const REPORT_EVERY: usize = 100;

/// MLServer waits this long between two attempts at a batch (the unit
/// tests wait less; the end-to-end tests check the second).
const RETRY_SLEEP: Duration = if cfg!(test) {
    Duration::from_millis(10)
} else {
    Duration::from_secs(1)
};

/// The progress bar being drawn, if any: log lines are written around it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A log writer for stdout that hides the progress bar while it writes.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) if !bar.is_hidden() => bar.suspend(|| std::io::stdout().write(buf)),
            _ => std::io::stdout().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

pub(crate) fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let level = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,mlserver_infer={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(|| LogWriter)
        .try_init();
}

/// Counts shared by the workers, the writer and the progress bar.
#[derive(Default)]
struct Stats {
    lines: AtomicUsize,
    written: AtomicUsize,
    responses: AtomicUsize,
    errors: AtomicUsize,
    dropped: AtomicUsize,
}

impl Stats {
    fn message(&self) -> String {
        format!(
            "{} responses, {} errors, {} dropped",
            self.responses.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed)
        )
    }
}

/// A new UUID (version 4) for a line without an id or a merged batch.
fn new_uuid() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Python's `repr` of a `Dict[str, str]`, as MLServer logs the headers.
fn py_dict(headers: &[(String, String)]) -> String {
    let items: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_str_repr(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Counts the input's lines for the progress bar (only drawn on a terminal).
async fn count_lines(path: &std::path::Path) -> Option<u64> {
    let file = tokio::fs::File::open(path).await.ok()?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let buf = reader.fill_buf().await.ok()?;
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        last = *buf.last().expect("not empty");
        let n = buf.len();
        reader.consume(n);
    }
    Some(lines + u64::from(last != b'\n'))
}

pub(crate) async fn run(args: InferArgs) -> Result<Summary, BatchError> {
    let started = Instant::now();
    tracing::warn!(
        "`mlserver infer` is deprecated in MLServer 1.7.1 and will be removed in a future version"
    );
    let extra_verbose = args.is_extra_verbose();
    let verbose = args.is_verbose()?;
    if extra_verbose {
        tracing::info!("Running in extra verbose mode.");
    } else if verbose {
        tracing::info!("Running in verbose mode.");
    }
    if args.workers < 1 {
        return Err(BatchError::InvalidOption {
            option: "--workers",
            reason: format!("{} (at least 1 is needed)", args.workers),
        });
    }
    let headers = parse_headers(&args.header_entries());
    tracing::info!("server url: {}", args.url);
    tracing::info!("model name: {}", args.model_name);
    tracing::info!("request headers: {}", py_dict(&headers));
    tracing::info!("input file path: {}", args.input_data_path.display());
    tracing::info!("output file path: {}", args.output_data_path.display());
    tracing::info!("workers: {}", args.workers);
    tracing::info!("retries: {}", args.retries);
    tracing::info!("batch interval: {}", py_float_repr(args.batch_interval));
    tracing::info!("batch jitter: {}", py_float_repr(args.batch_jitter));
    tracing::info!("connection timeout: {}", args.timeout);
    tracing::info!("micro-batch size: {}", args.batch_size);
    if args.transport == Transport::Grpc {
        tracing::info!("transport: grpc");
    }

    if args.url.starts_with("http://") || args.url.starts_with("https://") {
        return Err(BatchError::UrlWithScheme(args.url.clone()));
    }
    // MLServer opens the output before reading the input: a missing input
    // still leaves an empty output file behind.
    let output = tokio::fs::File::create(&args.output_data_path)
        .await
        .map_err(|source| BatchError::OutputNotWritable {
            path: args.output_data_path.clone(),
            source,
        })?;
    let client = Arc::new(Client::new(&args, headers)?);
    let input = tokio::fs::File::open(&args.input_data_path)
        .await
        .map_err(|source| BatchError::Input {
            path: args.input_data_path.clone(),
            source,
        })?;

    let stats = Arc::new(Stats::default());
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if !bar.is_hidden() {
        if let Some(total) = count_lines(&args.input_data_path).await {
            bar.set_length(total);
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} requests ({msg}) eta {eta}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = BAR.lock() {
            *slot = Some(bar.clone());
        }
    }

    let workers = args.workers as usize;
    let (batch_tx, batch_rx) = mpsc::channel::<Vec<Item>>(2 * workers);
    let (line_tx, line_rx) = mpsc::channel::<Vec<OutputLine>>(2 * workers);
    let writer = tokio::spawn(write_lines(
        output,
        args.output_data_path.clone(),
        line_rx,
        stats.clone(),
    ));
    let batch_rx = Arc::new(tokio::sync::Mutex::new(batch_rx));
    let ctx = Arc::new(Worker {
        client,
        retries: args.retries,
        batch_interval: args.batch_interval,
        batch_jitter: args.batch_jitter,
        extra_verbose,
        stats: stats.clone(),
        bar: bar.clone(),
    });
    let mut handles = Vec::with_capacity(workers);
    for id in 0..workers {
        let (rx, tx, ctx) = (batch_rx.clone(), line_tx.clone(), ctx.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(items) = next else { break };
                if let Some(lines) = ctx.consume(id, items).await {
                    if tx.send(lines).await.is_err() {
                        break;
                    }
                }
            }
        }));
    }
    drop(line_tx);

    let read = read_batches(input, &args, batch_tx, &stats).await;
    for h in handles {
        let _ = h.await;
    }
    let written = writer.await.unwrap_or_else(|e| {
        Err(BatchError::Output {
            path: args.output_data_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    });
    bar.finish_and_clear();
    if let Ok(mut slot) = BAR.lock() {
        *slot = None;
    }
    read?;
    let written = written?;
    let elapsed = started.elapsed();
    tracing::info!("Total processed instances: {written}");
    tracing::info!("Time taken: {:.2} seconds", elapsed.as_secs_f64());
    Ok(Summary {
        written,
        responses: stats.responses.load(Ordering::Relaxed),
        errors: stats.errors.load(Ordering::Relaxed),
        dropped: stats.dropped.load(Ordering::Relaxed),
        lines: stats.lines.load(Ordering::Relaxed),
        elapsed,
    })
}

/// Cuts the input into batches of `--batch-size` lines (the whole file
/// when it is 0 or less: MLServer's batch is full only at exactly that
/// size). Lines are split at `\n` and kept as they are.
async fn read_batches(
    input: tokio::fs::File,
    args: &InferArgs,
    tx: mpsc::Sender<Vec<Item>>,
    stats: &Stats,
) -> Result<(), BatchError> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut batch = Vec::new();
    let mut index = 0usize;
    loop {
        let mut line = Vec::new();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|source| BatchError::Input {
                path: args.input_data_path.clone(),
                source,
            })?;
        if n == 0 {
            break;
        }
        batch.push(Item { index, line });
        index += 1;
        stats.lines.fetch_add(1, Ordering::Relaxed);
        if batch.len() as i64 == args.batch_size
            && tx.send(std::mem::take(&mut batch)).await.is_err()
        {
            return Ok(());
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    Ok(())
}

/// Appends each batch's lines to the output, flushing after each batch so
/// that a run that is stopped keeps what it finished.
async fn write_lines(
    file: tokio::fs::File,
    path: std::path::PathBuf,
    mut rx: mpsc::Receiver<Vec<OutputLine>>,
    stats: Arc<Stats>,
) -> Result<usize, BatchError> {
    let mut out = tokio::io::BufWriter::with_capacity(1 << 16, file);
    let mut counter = 0usize;
    while let Some(lines) = rx.recv().await {
        for line in lines {
            let mut text = line.text.into_bytes();
            text.push(b'\n');
            if let Err(e) = out.write_all(&text).await {
                tracing::error!("Failed to finalize task: {e}");
            }
            counter += 1;
            stats.written.store(counter, Ordering::Relaxed);
            if counter.is_multiple_of(REPORT_EVERY) {
                tracing::info!("Finalizer: processed instances: {counter}");
            }
        }
        out.flush().await.map_err(|source| BatchError::Output {
            path: path.clone(),
            source,
        })?;
    }
    out.shutdown()
        .await
        .map_err(|source| BatchError::Output { path, source })?;
    Ok(counter)
}

/// What every worker shares.
struct Worker {
    client: Arc<Client>,
    retries: i64,
    batch_interval: f64,
    batch_jitter: f64,
    extra_verbose: bool,
    stats: Arc<Stats>,
    bar: ProgressBar,
}

impl Worker {
    /// Processes one batch, then waits out the batch interval (only after
    /// a batch that did not fail outright, as MLServer does). `None`: the
    /// batch is lost.
    async fn consume(&self, id: usize, items: Vec<Item>) -> Option<Vec<OutputLine>> {
        let started = Instant::now();
        let n = items.len();
        let lines = self.process(id, &items).await;
        match &lines {
            Some(lines) => {
                let responses = lines
                    .iter()
                    .filter(|l| l.kind == LineKind::Response)
                    .count();
                self.stats.responses.fetch_add(responses, Ordering::Relaxed);
                self.stats
                    .errors
                    .fetch_add(lines.len() - responses, Ordering::Relaxed);
                self.stats
                    .dropped
                    .fetch_add(n.saturating_sub(lines.len()), Ordering::Relaxed);
            }
            None => {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                if self.extra_verbose {
                    let text: Vec<String> = items
                        .iter()
                        .map(|i| {
                            format!(
                                "{}: {}",
                                i.index,
                                String::from_utf8_lossy(&i.line).trim_end()
                            )
                        })
                        .collect();
                    tracing::error!("consumer {id}: failed to process item {}", text.join("\n"));
                }
            }
        }
        self.bar.inc(n as u64);
        self.bar.set_message(self.stats.message());
        if lines.is_some() && (self.batch_interval > 0.0 || self.batch_jitter > 0.0) {
            let total = self.batch_interval + fastrand::f64() * self.batch_jitter;
            let remaining = total - started.elapsed().as_secs_f64();
            tracing::debug!("consume {id}: sleeping for {remaining:.3}");
            if remaining > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(remaining)).await;
            }
        }
        lines
    }

    async fn process(&self, id: usize, items: &[Item]) -> Option<Vec<OutputLine>> {
        let mut uuid = new_uuid;
        let prepared = match batch::preprocess(items, &mut uuid) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("consumer {id}: failed to preprocess items: {e}");
                return None;
            }
        };
        if prepared.nothing_to_send {
            return Some(prepared.invalid);
        }
        tracing::debug!("consumer {id}: sending request");
        match self.send(id, &prepared.request).await {
            Err(e) => {
                tracing::error!("consumer {id}: failed to process task: {e}");
                Some(batch::failure_lines(&prepared, &e.message))
            }
            Ok(None) => {
                // MLServer's retry loop never runs: it goes on with no
                // result, fails to read it, and loses the batch.
                tracing::error!(
                    "consumer {id}: failed to postprocess item: no request was sent (retries is {}); \
                     the batch's lines are left out",
                    self.retries
                );
                None
            }
            Ok(Some(answer)) => {
                tracing::debug!("consumer {id}: received response");
                match answer
                    .into_full_response()
                    .and_then(|full| batch::postprocess(&full, &prepared))
                {
                    Ok(mut lines) => {
                        lines.extend(prepared.invalid);
                        Some(lines)
                    }
                    Err(e) => {
                        tracing::error!("consumer {id}: failed to postprocess item: {e}");
                        None
                    }
                }
            }
        }
    }

    /// Up to `retries` attempts, a second apart; `Ok(None)` when no attempt
    /// is allowed.
    async fn send(
        &self,
        id: usize,
        request: &batch::WireRequest,
    ) -> Result<Option<Answer>, SendError> {
        let mut attempt = 0i64;
        while attempt < self.retries {
            attempt += 1;
            match self.client.infer(request).await {
                Ok(answer) => return Ok(Some(answer)),
                Err(e) => {
                    tracing::error!(
                        "consumer {id}: retries {attempt}/{}, exception {e}",
                        self.retries
                    );
                    if attempt == self.retries {
                        return Err(e);
                    }
                    tokio::time::sleep(RETRY_SLEEP).await;
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-route HTTP server: the first `failures` calls get a 500 with
    /// `{"error": "boom"}`, the others a response. Counts the calls.
    async fn flaky_server(failures: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then as much body as it announces.
                let body_len = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        break Some((end + 4, len));
                    }
                };
                let Some((start, len)) = body_len else {
                    continue;
                };
                while buf.len() < start + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let call = counter.fetch_add(1, Ordering::SeqCst);
                let (status, body) = if call < failures {
                    (
                        "500 Internal Server Error",
                        r#"{"error": "boom"}"#.to_string(),
                    )
                } else {
                    (
                        "200 OK",
                        r#"{"model_name":"m","id":"x","parameters":{},"outputs":[{"name":"o","shape":[1],"datatype":"INT32","data":[1]}]}"#
                            .to_string(),
                    )
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (addr, calls)
    }

    async fn one_line_run(addr: std::net::SocketAddr, retries: i64) -> (Summary, String) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let output = dir.path().join("out.jsonl");
        std::fs::write(
            &input,
            r#"{"id":"x","inputs":[{"name":"i","shape":[1],"datatype":"INT32","data":[1]}]}"#,
        )
        .unwrap();
        let mut args = InferArgs::new("m", &input, &output);
        args.url = addr.to_string();
        args.retries = retries;
        args.workers = 1;
        let summary = run(args).await.unwrap();
        (summary, std::fs::read_to_string(&output).unwrap())
    }

    #[tokio::test]
    async fn a_batch_is_retried_until_it_succeeds() {
        let (addr, calls) = flaky_server(2).await;
        let (summary, out) = one_line_run(addr, 3).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(summary.responses, 1);
        assert_eq!(
            out,
            "{\"model_name\":\"m\",\"id\":\"x\",\"parameters\":{\"batch_index\":0,\"inference_id\":\"x\"},\"outputs\":[{\"name\":\"o\",\"shape\":[1,1],\"datatype\":\"INT32\",\"parameters\":{\"content_type\":\"np\"},\"data\":[1]}]}\n"
        );
    }

    #[tokio::test]
    async fn a_batch_that_fails_every_retry_is_reported_with_the_servers_message() {
        let (addr, calls) = flaky_server(5).await;
        let (summary, out) = one_line_run(addr, 2).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(summary.errors, 1);
        assert_eq!(
            out,
            "{\"parameters\": {\"batch_index\": 0}, \"error\": {\"status\": \"preprocessing error\", \"msg\": \"boom\"}}\n"
        );
    }

    #[tokio::test]
    async fn no_retries_sends_nothing_and_writes_nothing() {
        let (addr, calls) = flaky_server(0).await;
        let (summary, out) = one_line_run(addr, 0).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!((summary.written, summary.dropped), (0, 1));
        assert_eq!(out, "");
    }

    #[test]
    fn uuids_are_version_4() {
        let a = new_uuid();
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(a, new_uuid());
    }

    #[test]
    fn headers_are_logged_as_a_python_dict() {
        assert_eq!(py_dict(&[]), "{}");
        assert_eq!(
            py_dict(&[("A".into(), "1".into()), ("b".into(), "it's".into())]),
            "{'A': '1', 'b': \"it's\"}"
        );
    }
}
