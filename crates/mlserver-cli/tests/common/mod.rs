//! What the CLI's end-to-end tests share: starting a server binary on free
//! loopback ports and following its log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
