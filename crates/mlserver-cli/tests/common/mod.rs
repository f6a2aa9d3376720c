//! What the CLI's end-to-end tests share: starting a server binary on free
//! loopback ports and following its log.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mlserver");

/// Spawns `command` (an `mlserver start ...`) with every port free on
/// loopback (settings files may still set their own), and returns the
/// child, its HTTP address from the log, and its log lines (from the first).
pub(crate) fn spawn_server(command: &mut Command) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = command
        .env_remove("RUST_LOG")
        .env("MLSERVER_HOST", "127.0.0.1")
        .env("MLSERVER_HTTP_PORT", "0")
        .env("MLSERVER_GRPC_PORT", "0")
        .env("MLSERVER_METRICS_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    // The lines read while looking for the address are handed on too.
    let (early, log) = mpsc::channel();
    let addr = loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the server never logged its address");
        };
        let addr = line
            .split("HTTP server running on http://")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect::<String>()
            });
        let _ = early.send(line);
        if let Some(addr) = addr {
            break addr;
        }
    };
    std::thread::spawn(move || {
        for line in rx {
            if early.send(line).is_err() {
                return;
            }
        }
    });
    (child, addr, log)
}

/// A running `mlserver start`, with its three addresses and its log.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) http: String,
    pub(crate) grpc: String,
    pub(crate) metrics: String,
    log: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Running {
    /// `mlserver start <folder>` with `envs`; under `prlimit --nofile` when
    /// `open_files` is given.
    pub(crate) fn start(folder: &Path, envs: &[(&str, &str)], open_files: Option<u64>) -> Self {
        let mut command = match open_files {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        command.arg("start").arg(folder).envs(envs.iter().copied());
        Self::spawn(&mut command)
    }

    /// Runs `command` (an `mlserver start ...`, see [`spawn_server`]) and
    /// waits until it is ready.
    pub(crate) fn spawn(command: &mut Command) -> Self {
        let (child, http, log) = spawn_server(command);
        let mut running = Running {
            child,
            http,
            grpc: String::new(),
            metrics: String::new(),
            log,
            lines: Vec::new(),
        };
        running.grpc = running.address("gRPC server running on http://");
        running.metrics = running.address("Metrics server running on http://");
        running.wait_ready();
        running
    }

    pub(crate) fn address(&mut self, prefix: &str) -> String {
        let found = |lines: &[String]| {
            lines.iter().find_map(|l| {
                l.split(prefix).nth(1).map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect::<String>()
                })
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = found(&self.lines) {
                return addr;
            }
            assert!(Instant::now() < deadline, "no {prefix:?} in the log");
            if let Ok(line) = self.log.recv_timeout(Duration::from_millis(100)) {
                self.lines.push(line);
            }
        }
    }

    pub(crate) fn wait_ready(&self) {
        let client = reqwest::blocking::Client::new();
        for _ in 0..1500 {
            if client
                .get(self.url("/v2/health/ready"))
                .send()
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server never became ready");
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// A field of /proc/<pid>/status, in KiB (`VmRSS`, `VmHWM`).
    pub(crate) fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in\n{status}"))
    }

    /// Waits until `/proc/<pid>/status` gives `field` at most `bound_kib`;
    /// fails if it is still above 30 s later, naming what came `after`.
    pub(crate) fn wait_memory_at_most(&self, field: &str, bound_kib: u64, after: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now_kib = self.memory_kib(field);
            if now_kib <= bound_kib {
                eprintln!("{field} {now_kib} KiB after {after}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{field} still {now_kib} KiB 30 s after {after} (bound: {bound_kib} KiB)"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The server's own pid (under prlimit, prlimit execs it: the same).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub(crate) fn log_lines(&mut self) -> &[String] {
        self.lines.extend(self.log.try_iter());
        &self.lines
    }

    /// SIGTERM, then waits (at most `bound`) for the exit.
    pub(crate) fn terminate(&mut self, bound: Duration) -> Duration {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return started.elapsed();
            }
            if started.elapsed() > bound {
                let _ = self.child.kill();
                panic!("the server did not exit within {bound:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn scrape(&self) -> String {
        reqwest::blocking::get(format!("http://{}/metrics", self.metrics))
            .unwrap()
            .text()
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
