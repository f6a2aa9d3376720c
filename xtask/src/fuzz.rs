//! `cargo xtask fuzz <target>|all [--time S] [--runs N]`: builds the
//! libFuzzer binaries in `fuzz/` with coverage instrumentation on stable
//! rustc (the sancov pass, as cargo-fuzz does with nightly; no sanitizer,
//! which needs nightly) and runs a target from its seed corpus, printing
//! executions, coverage and findings.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The targets (mlserver_fuzz::TARGETS; fuzz/Cargo.toml's bins).
const TARGETS: &[&str] = &[
    "infer_request_json",
    "binary_request",
    "grpc_request",
    "settings",
    "model_settings",
    "dockerignore",
    "xgboost_model",
    "lightgbm_model",
    "sklearn_handover",
];

pub(crate) const USAGE: &str = "\
cargo xtask fuzz <target>|all [--time SECONDS] [--runs N]

  targets: infer_request_json binary_request grpc_request settings model_settings dockerignore
           xgboost_model lightgbm_model sklearn_handover
  --time S   stop after S seconds (default 60)
  --runs N   stop after N executions (whichever comes first)

Seeds: fuzz/corpus/<target>/ (read); new inputs: target/fuzz/corpus/<target>/;
crashes: target/fuzz/artifacts/<target>/ (copy each into fuzz/regressions/<target>/
once fixed: the corpus test replays them).";

pub(crate) struct Options {
    targets: Vec<String>,
    seconds: u64,
    runs: Option<u64>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut targets = Vec::new();
        let mut seconds = 60;
        let mut runs = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> Result<u64> {
                args.next()
                    .with_context(|| format!("{name} needs a value"))?
                    .parse()
                    .with_context(|| format!("{name} needs a number"))
            };
            match arg.as_str() {
                "--time" => seconds = value("--time")?,
                "--runs" => runs = Some(value("--runs")?),
                "all" => targets.extend(TARGETS.iter().map(|t| t.to_string())),
                t if TARGETS.contains(&t) => targets.push(t.to_owned()),
                other => bail!("unknown target or option {other:?}\n\n{USAGE}"),
            }
        }
        if targets.is_empty() {
            bail!("which target?\n\n{USAGE}");
        }
        Ok(Options {
            targets,
            seconds,
            runs,
        })
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

fn host_triple() -> Result<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("no host triple in rustc -vV")
}

/// What one run found.
struct Outcome {
    executions: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    crashed: Option<String>,
}

pub(crate) fn run(options: Options) -> Result<()> {
    let root = root();
    let triple = host_triple()?;
    let target_dir = root.join("target/fuzz");
    // The flags cargo-fuzz passes, minus the sanitizer: all stable. With an
    // explicit --target, RUSTFLAGS skip build scripts and proc macros.
    let rustflags = [
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "--cfg=fuzzing",
    ]
    .join(" ");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("fuzz/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--target", &triple])
        .args(options.targets.iter().flat_map(|t| ["--bin", t.as_str()]))
        .env("RUSTFLAGS", rustflags)
        .status()
        .context("building the fuzz targets")?;
    if !status.success() {
        bail!("building the fuzz targets failed");
    }
    let mut failed = Vec::new();
    for target in &options.targets {
        let binary = target_dir.join(&triple).join("release").join(target);
        let outcome = fuzz(&root, &binary, target, options.seconds, options.runs)?;
        println!(
            "{target}: {} executions in at most {} s, coverage {} edges ({} features), corpus {}, {}",
            outcome.executions,
            options.seconds,
            outcome.coverage,
            outcome.features,
            outcome.corpus,
            outcome
                .crashed
                .as_deref()
                .map_or("no crash".to_owned(), |c| format!("CRASH: {c}"))
        );
        if outcome.crashed.is_some() {
            failed.push(target.clone());
        }
    }
    if !failed.is_empty() {
        bail!("crashes in {}", failed.join(", "));
    }
    Ok(())
}

fn fuzz(
    root: &Path,
    binary: &Path,
    target: &str,
    seconds: u64,
    runs: Option<u64>,
) -> Result<Outcome> {
    let work = root.join("target/fuzz/corpus").join(target);
    let artifacts = root.join("target/fuzz/artifacts").join(target);
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&artifacts)?;
    let mut command = Command::new(binary);
    command
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-max_len=65536")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&work)
        .arg(root.join("fuzz/corpus").join(target));
    if let Some(runs) = runs {
        command.arg(format!("-runs={runs}"));
    }
    eprintln!("fuzzing {target} for {seconds} s");
    let out = command
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let log = String::from_utf8_lossy(&out.stderr);
    std::fs::write(
        root.join("target/fuzz").join(format!("{target}.log")),
        &*log,
    )?;
    let stat = |name: &str| -> u64 {
        log.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    // The last status line: "#N DONE cov: C ft: F corp: K/..." or similar.
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains(" cov: "))
        .unwrap_or("");
    let field = |name: &str| -> u64 {
        last.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .and_then(|v| v.split('/').next()?.parse().ok())
            .unwrap_or(0)
    };
    let crashed = (!out.status.success()).then(|| {
        log.lines()
            .find(|l| l.contains("Test unit written to"))
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| format!("exit {:?}; see target/fuzz/{target}.log", out.status))
    });
    Ok(Outcome {
        executions: stat("stat::number_of_executed_units:"),
        coverage: field("cov:"),
        features: field("ft:"),
        corpus: field("corp:"),
        crashed,
    })
}
