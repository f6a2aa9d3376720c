//! `cargo xtask release`: the release `mlserver` linked with the functions
//! a running server executes side by side (see `crates/mlserver-cli/build.rs`
//! for why), from a list made by this step and kept under `target/` only:
//! the list names functions by their mangled names, which change with the
//! compiler and the sources, so it is made by the toolchain that uses it,
//! right before the link, and never committed.
//!
//! The release server runs under valgrind's callgrind, which records every
//! function that executes, three times: on `bench/models` started, made
//! ready and stopped (what every server runs, and what stays resident
//! while it idles); on `bench/models` again with every bench scenario over
//! REST JSON, the binary extension and gRPC, metadata, the repository
//! index and a metrics scrape (serving); on `examples/models` with those
//! and requests to the ONNX and text runtimes. The list holds the first
//! run's functions, then those only the second ran, then those only the
//! third ran, each in the order callgrind first names them; only our
//! binary's, by their mangled names as the linker sees them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mlserver_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use mlserver_proto::inference::{ModelMetadataRequest, ServerMetadataRequest};
use serde_json::json;

use super::callgrind::wrap_in;
use super::loadgen::{self, grpc_channel, http_client, Bursts, Endpoints};
use super::servers::{self, free_port, ours_on, Paths, Running};

pub const USAGE: &str = "\
cargo xtask release [--no-build]

  Builds the release binary, runs it under valgrind's callgrind (started and
  stopped; serving every kind of request on bench/models; and on
  examples/models), writes the functions it executed to
  target/release-order/symbol-order.txt and links the release binary again in
  that order, then checks the binary defines the functions listed (a list
  that has gone stale fails here, and in `cargo xtask bench`'s build, rather
  than only costing memory). --no-build profiles target/release/mlserver as
  it is.";

/// Where the list is kept: with the build it was made for.
pub fn list_path(paths: &Paths) -> PathBuf {
    paths.target.join("release-order").join("symbol-order.txt")
}

/// The environment variable `crates/mlserver-cli/build.rs` reads the list
/// from.
pub const LIST_VARIABLE: &str = "MLSERVER_RS_SYMBOL_ORDER";

/// The share of listed functions the linked binary must define: a list made
/// by this toolchain from these sources names them all (a few may be
/// inlined away by the second link's different order).
const FRESH_SHARE: f64 = 0.95;

pub fn run(args: &[String]) -> Result<()> {
    let mut build = true;
    for a in args {
        match a.as_str() {
            "--no-build" => build = false,
            _ => bail!("unknown option {a:?}\n\n{USAGE}"),
        }
    }
    let paths = Paths::new();
    let dir = paths.work.join("symbol-order");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let list = list_path(&paths);
    if build {
        // Profiled unordered: the list must not depend on an older one.
        let _ = fs::remove_file(&list);
        build_release(&paths)?;
    }
    let symbols = record(&paths, &dir)?;
    fs::create_dir_all(list.parent().expect("a folder"))?;
    fs::write(&list, symbols.join("\n") + "\n")?;
    eprintln!("wrote {} ({} functions)", list.display(), symbols.len());
    build_release(&paths)?;
    Ok(())
}

/// Builds our server and the yardstick in release mode.
pub fn build_release(paths: &Paths) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Linked in the order `cargo xtask release` listed, when it has.
    let list = list_path(paths);
    let ordered = list.is_file();
    eprintln!(
        "==> cargo build --release -p mlserver-cli -p yardstick{}",
        if ordered { " (ordered link)" } else { "" }
    );
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&paths.root).args([
        "build",
        "--release",
        "-p",
        "mlserver-cli",
        "-p",
        "yardstick",
    ]);
    if ordered {
        cmd.env(LIST_VARIABLE, &list);
    }
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    if ordered {
        check_fresh(&paths.target.join("release").join("mlserver"), &list)?;
    }
    Ok(())
}

/// Fails when the release binary does not define most functions of the
/// list it was linked with: the list was made for other sources or another
/// compiler, and the link order it gives is mostly lost.
pub fn check_fresh(binary: &Path, list: &Path) -> Result<()> {
    let listed = fs::read_to_string(list)?;
    let listed: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    let out = std::process::Command::new("nm")
        .args(["--defined-only", "--format=just-symbols"])
        .arg(binary)
        .output()
        .context("running nm (binutils) on the release binary")?;
    if !out.status.success() {
        bail!(
            "nm {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let defined: HashSet<&str> = std::str::from_utf8(&out.stdout)?.lines().collect();
    let found = listed.iter().filter(|s| defined.contains(*s)).count();
    let share = found as f64 / listed.len().max(1) as f64;
    if share < FRESH_SHARE {
        bail!(
            "{} defines {found} of the {} functions {} lists ({:.0}%): the list is stale \
             (other sources or another compiler); run `cargo xtask release` again",
            binary.display(),
            listed.len(),
            list.display(),
            share * 100.0
        );
    }
    eprintln!(
        "    linked in the order of {}: {found} of {} listed functions defined",
        list.display(),
        listed.len()
    );
    Ok(())
}

/// The functions the release binary executes in the three profiled runs.
fn record(paths: &Paths, dir: &Path) -> Result<Vec<String>> {
    let binary = paths.target.join("release").join("mlserver");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut symbols = Vec::new();
    let mut seen = HashSet::new();
    let bench = paths.root.join("bench").join("models");
    let examples = paths.root.join("examples").join("models");
    for (run, folder) in [
        (Run::Start, &bench),
        (Run::Serve, &bench),
        (Run::Examples, &examples),
    ] {
        let name = format!("{run:?}").to_lowercase();
        eprintln!("==> {name}: {} under callgrind", folder.display());
        let dump = dir.join(format!("callgrind.out.{name}"));
        rt.block_on(profile(paths, folder, &dump, run))?;
        let text = fs::read_to_string(&dump)
            .with_context(|| format!("reading the dump {}", dump.display()))?;
        let before = symbols.len();
        for symbol in executed_functions(&text, &binary) {
            if seen.insert(symbol.clone()) {
                symbols.push(symbol);
            }
        }
        eprintln!(
            "    {} functions, {} new",
            seen.len(),
            symbols.len() - before
        );
    }
    if symbols.len() < 500 {
        bail!(
            "only {} functions recorded: is the binary stripped?",
            symbols.len()
        );
    }
    Ok(symbols)
}

/// What a profiling run sends the server between ready and stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Nothing.
    Start,
    /// Every kind of request to the bench's models.
    Serve,
    /// The same, and requests to the example models' runtimes.
    Examples,
}

/// Starts the server on `folder` under callgrind, sends it what `run`
/// says, and stops it (callgrind writes `dump` as it exits).
async fn profile(paths: &Paths, folder: &Path, dump: &Path, run: Run) -> Result<()> {
    let ports = [free_port()?, free_port()?, free_port()?];
    let cmd = ours_on(paths, folder, ports);
    let out_file = format!("--callgrind-out-file={}", dump.display());
    let cmd = wrap_in(
        &cmd,
        &["valgrind", "--tool=callgrind", "--demangle=no", &out_file],
    );
    let mut running = Running::spawn(cmd, paths, "symbol-order", ports)?;
    servers::wait_ready(&mut running, Instant::now()).await?;
    let result = match run {
        Run::Start => Ok(()),
        Run::Serve | Run::Examples => {
            requests(&running.endpoints, ports[2], run == Run::Examples).await
        }
    };
    tokio::task::block_in_place(|| running.stop());
    result?;
    if !dump.is_file() {
        bail!("callgrind wrote no {}", dump.display());
    }
    Ok(())
}

async fn requests(endpoints: &Endpoints, metrics_port: u16, examples: bool) -> Result<()> {
    for scenario in loadgen::scenarios() {
        let mut bursts = Bursts::new(&scenario, endpoints).await?;
        let outcome = bursts.send(2).await?;
        if outcome.errors + outcome.invalid > 0 {
            bail!("{}: {:?}", scenario.name, outcome.first_problem);
        }
    }
    let client = http_client(1)?;
    let base = &endpoints.http;
    let mut calls = vec![
        ("GET", format!("{base}/v2"), None),
        ("GET", format!("{base}/v2/health/live"), None),
        ("GET", format!("{base}/v2/models/sum-model"), None),
        (
            "POST",
            format!("{base}/v2/repository/index"),
            Some(json!({})),
        ),
        (
            "GET",
            format!("http://127.0.0.1:{metrics_port}/metrics"),
            None,
        ),
    ];
    if examples {
        let rows = json!([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]);
        let iris = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": rows}]});
        let text = json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "world"]}]});
        calls.extend([
            ("GET", format!("{base}/v2/models/iris"), None),
            (
                "POST",
                format!("{base}/v2/models/iris/infer"),
                Some(iris.clone()),
            ),
            (
                "POST",
                format!("{base}/v2/models/iris-tree/infer"),
                Some(iris),
            ),
            (
                "POST",
                format!("{base}/v2/models/text-model/versions/1/infer"),
                Some(text),
            ),
        ]);
    }
    for (method, url, body) in calls {
        let request = match body {
            Some(body) => client.post(&url).json(&body),
            None if method == "GET" => client.get(&url),
            None => client.post(&url),
        };
        let status = request.send().await?.status();
        if !status.is_success() {
            bail!("{method} {url}: {status}");
        }
    }
    let mut grpc = GrpcInferenceServiceClient::new(grpc_channel(&endpoints.grpc).await?);
    grpc.server_metadata(ServerMetadataRequest {}).await?;
    grpc.model_metadata(ModelMetadataRequest {
        name: "sum-model".into(),
        version: String::new(),
    })
    .await?;
    Ok(())
}

/// The functions of `binary` that executed, by the names callgrind recorded
/// (mangled with `--demangle=no`), in the order they first execute in the
/// dump.
///
/// A dump names each object and function once in full, as `(id) name`,
/// and by `(id)` alone after that; the first naming may be on a call line
/// (`cob=`, `cfn=`). Every function that ran has a `fn=` line under an
/// `ob=` line of the object it belongs to.
fn executed_functions(dump: &str, binary: &Path) -> Vec<String> {
    let binary = fs::canonicalize(binary).unwrap_or_else(|_| PathBuf::from(binary));
    let mut objects = HashMap::new();
    let mut names = HashMap::new();
    let mut in_binary = false;
    let mut functions = Vec::new();
    for line in dump.lines() {
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        let (id, name) = match rest.split_once(' ') {
            Some((id, name)) => (id, Some(name)),
            None => (rest, None),
        };
        match key {
            "ob" | "cob" => {
                if let Some(name) = name {
                    objects.insert(id, Path::new(name) == binary);
                }
                if key == "ob" {
                    in_binary = objects.get(id).copied().unwrap_or(false);
                }
            }
            "fn" | "cfn" => {
                if let Some(name) = name {
                    names.insert(id, name);
                }
                if key == "fn" && in_binary {
                    if let Some(name) = names.get(id).filter(|n| !n.starts_with("0x")) {
                        functions.push((*name).to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_binarys_functions_in_the_order_first_named() {
        let dump = "\
ob=(1) /bin/mlserver
fn=(1) _ZN5tokio3run17h0123456789abcdefE
0 10
cob=(2) /lib/libc.so.6
cfn=(2) memcpy
calls=1 0
cob=(1)
cfn=(5) _ZN4core3fmt5write17h00000000000000aaE
calls=1 0
ob=(2)
fn=(2)
0 5
ob=(1)
fn=(3) _ZN5hyper4read17hfedcba9876543210E
fn=(5)
fn=(1)
fn=(4) 0x0000000000001050
";
        assert_eq!(
            executed_functions(dump, Path::new("/bin/mlserver")),
            [
                "_ZN5tokio3run17h0123456789abcdefE",
                "_ZN5hyper4read17hfedcba9876543210E",
                "_ZN4core3fmt5write17h00000000000000aaE",
                "_ZN5tokio3run17h0123456789abcdefE",
            ]
        );
    }
}
