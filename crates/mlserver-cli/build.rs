//! Links the release `mlserver` binary compactly, because a server's memory
//! is read as its RSS, and the kernel counts in it far more of a binary than
//! the server uses:
//!
//! - **Code in the order a server runs it**, when `MLSERVER_RS_SYMBOL_ORDER`
//!   names a list of functions: those a server runs (start, REST, gRPC,
//!   metrics, the bundled runtimes) side by side, instead of spread over
//!   29 MiB of code as the crates happen to be laid out. The kernel maps
//!   code in 64 KiB around each page a process faults in, so with the
//!   default layout an idle server had 7 MiB of code resident for about
//!   2,700 functions; ordered, about 2 MiB (15.6 → 12.1 MiB idle on
//!   bench/models). The list names mangled symbols, which change with the
//!   compiler and the sources, so it is never committed: `cargo xtask
//!   release` makes it from the binary it is about to relink (callgrind on
//!   a running server) and checks the result defines the functions listed.
//! - **Packed relative relocations** (`-z pack-relative-relocs`, DT_RELR):
//!   a position-independent binary's 1.7 MiB table of relative relocations,
//!   which the loader reads whole at start and which stayed resident, shrinks
//!   to 16 KiB. The binary then needs glibc 2.36 or later (Debian 12, Ubuntu
//!   24.04, RHEL 10; older ones refuse it at start, naming the missing
//!   `GLIBC_ABI_DT_RELR`), so only when the machine building it has that.
//!
//! Both only where the linker is known to be LLD, which takes these flags:
//! rustc 1.90 and later on x86_64 Linux, with no linker chosen in the
//! configuration. `MLSERVER_RS_COMPACT_LINK=0` turns both off.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MLSERVER_RS_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=MLSERVER_RS_COMPACT_LINK");
    let env = |key: &str| std::env::var(key).unwrap_or_default();
    if env("MLSERVER_RS_COMPACT_LINK") == "0"
        || env("PROFILE") != "release"
        || env("TARGET") != "x86_64-unknown-linux-gnu"
        || !env("RUSTC_LINKER").is_empty()
        || chooses_linker(&env("CARGO_ENCODED_RUSTFLAGS"))
        || !rustc_links_with_lld(&env("RUSTC"))
    {
        return;
    }
    let link_arg = |arg: &str| println!("cargo:rustc-link-arg-bin=mlserver={arg}");
    let list = env("MLSERVER_RS_SYMBOL_ORDER");
    if !list.is_empty() {
        println!("cargo:rerun-if-changed={list}");
        if !Path::new(&list).is_file() {
            panic!("MLSERVER_RS_SYMBOL_ORDER names {list}, which is not a file");
        }
        link_arg(&format!("-Wl,--symbol-ordering-file={list}"));
        // Functions the list names that this build does not have (inlined
        // away) are expected; the release step counts the ones it does.
        link_arg("-Wl,--no-warn-symbol-ordering");
    }
    if env("HOST") == env("TARGET") && host_glibc_at_least(2, 36) {
        link_arg("-Wl,-z,pack-relative-relocs");
    }
}

/// Flags that pick a linker other than rustc's default.
fn chooses_linker(encoded_rustflags: &str) -> bool {
    encoded_rustflags
        .split('\x1f')
        .any(|flag| flag.contains("linker") || flag.contains("fuse-ld"))
}

/// rustc 1.90 and later link x86_64 Linux binaries with its own LLD.
fn rustc_links_with_lld(rustc: &str) -> bool {
    let rustc = if rustc.is_empty() { "rustc" } else { rustc };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    output_version(rustc, &["--version"], 1).is_some_and(|v| v >= (1, 90))
}

/// The glibc of the machine building, from `getconf` ("glibc 2.36").
fn host_glibc_at_least(major: u32, minor: u32) -> bool {
    output_version("getconf", &["GNU_LIBC_VERSION"], 1).is_some_and(|v| v >= (major, minor))
}

/// The `major.minor` in the `word`-th word of what `program args` prints.
fn output_version(program: &str, args: &[&str], word: usize) -> Option<(u32, u32)> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text
        .split_whitespace()
        .nth(word)?
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}
