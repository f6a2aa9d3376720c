//! Workspace tasks: `cargo xtask <task>`.
//!
//! - `bench`: the real MLServer, `mlserver-rs` and a minimal yardstick, side
//!   by side on the same workload (see `bench/README` in `BENCHMARKS.md`).
//! - `release`: the release binary as shipped, its code linked in the order a
//!   running server executes it (see `crates/mlserver-cli/build.rs`).
//! - `fuzz`: the libFuzzer targets in `fuzz/`, instrumented on stable rustc
//!   (see `FUZZING.md`).

mod bench;
mod fuzz;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::Options::parse(&args[1..]).and_then(bench::run),
        Some("fuzz") => fuzz::Options::parse(&args[1..]).and_then(fuzz::run),
        Some("release") => bench::release::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask bench [options]\n\n{}\n\n{}\n\n{}",
                bench::USAGE,
                fuzz::USAGE,
                bench::release::USAGE
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
