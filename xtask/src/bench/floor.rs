//! The machine's floor for latency at concurrency 1: a bare request and
//! reply on loopback TCP, with no HTTP, no async runtime and no server.
//!
//! On a VM, a thread blocked in `read` on another CPU is woken through the
//! hypervisor, and that wake-up can cost more than a whole small inference
//! request. No server's p99 at concurrency 1 can be below this one's, so the
//! report prints it beside those tables: a latency target below the floor
//! is out of reach on the machine, whatever the server does.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::loadgen::Outcome;
use super::stats::percentile;

/// A small inference request's size on the wire, roughly.
const MESSAGE: usize = 64;

/// Round trips of [`MESSAGE`] bytes between two threads for `duration`:
/// one echoes with blocking reads and writes, the other sends, waits for
/// the echo and times it. Both set `TCP_NODELAY`, as HTTP clients and
/// servers do.
pub fn measure(duration: Duration) -> Result<Outcome> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let echo = thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        conn.set_nodelay(true)?;
        let mut buf = [0u8; MESSAGE];
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok(()),
                n => conn.write_all(&buf[..n])?,
            }
        }
    });
    let mut client = TcpStream::connect(addr)?;
    client.set_nodelay(true)?;
    let message = [7u8; MESSAGE];
    let mut reply = [0u8; MESSAGE];
    let mut samples = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    while start.elapsed() < duration {
        let sent = Instant::now();
        client.write_all(&message)?;
        client.read_exact(&mut reply)?;
        samples.push(sent.elapsed());
    }
    let elapsed = start.elapsed();
    drop(client);
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))?
        .context("loopback echo")?;
    samples.sort_unstable();
    Ok(Outcome {
        requests: samples.len() as u64,
        rps: samples.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trips() {
        let floor = measure(Duration::from_millis(50)).unwrap();
        assert!(floor.requests > 0);
        assert!(floor.p50 > Duration::ZERO && floor.p50 <= floor.p99);
        assert!(floor.rps > 0.0);
    }
}
