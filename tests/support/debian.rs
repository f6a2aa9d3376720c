//! Tools from Debian's archive, unpacked under `target/` on first use
//! (`apt-get download` and `dpkg-deb -x`: no root, no installed
//! dependencies, nothing left on the machine outside `target/`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::workspace_root;

/// `promtool` from Debian's `prometheus` package, or `None` (after
/// [`super::missing_real_part`]) when the archive cannot be reached.
pub fn promtool() -> Option<PathBuf> {
    static TOOL: OnceLock<Option<PathBuf>> = OnceLock::new();
    TOOL.get_or_init(|| unpacked("prometheus", "usr/bin/promtool"))
        .clone()
}

/// `path` inside Debian's `package`, unpacked into `target/debian/<package>`.
fn unpacked(package: &str, path: &str) -> Option<PathBuf> {
    // Test binaries run in parallel: one process at a time per package
    // within a binary; across binaries the unpack is idempotent and the
    // final rename atomic.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = workspace_root().join("target").join("debian");
    let dir = root.join(package);
    let tool = dir.join(path);
    if tool.is_file() {
        return Some(tool);
    }
    let what = format!("Debian's {package} package ({path})");
    let work = root.join(format!("{package}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("target/debian");
    let download = Command::new("apt-get")
        .args(["download", "-qq", package])
        .current_dir(&work)
        .output();
    let deb = std::fs::read_dir(&work).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
    });
    let Some(deb) = deb else {
        let why = match download {
            Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
            Err(e) => format!("apt-get: {e}"),
        };
        super::missing_real_part(&what, &format!("apt-get download failed: {why}"));
        return None;
    };
    let unpack = work.join("root");
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpack)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb -x {}: {}",
        deb.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(unpack.join(path).is_file(), "{package} has no {path}");
    let _ = std::fs::rename(&unpack, &dir);
    let _ = std::fs::remove_dir_all(&work);
    tool.is_file().then_some(tool)
}
