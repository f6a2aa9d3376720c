//! NVIDIA's `perf_analyzer` (PyPI's `perf-analyzer`), runnable here.
//!
//! Its wheels are tagged `manylinux_2_38` (pip on this glibc 2.36 machine
//! resolves only a 2 kB placeholder release) and the binary needs glibc
//! 2.38 and a newer libstdc++. So: the wheel is downloaded for its platform
//! and the binary taken out of it; Debian trixie's `libc6`, `libstdc++6`
//! and `libgcc-s1` are fetched with an apt configuration of our own
//! (nothing of the system's apt state is read or written) and unpacked;
//! the binary runs through trixie's dynamic loader with trixie's libraries
//! first. All under `target/perf-analyzer`, made once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::workspace_root;

const VERSION: &str = "2.60.0";

/// A `perf_analyzer` command line (the loader, its library path, the
/// binary), or `None` after [`super::missing_real_part`].
pub fn perf_analyzer() -> Option<Command> {
    static PARTS: OnceLock<Option<(PathBuf, PathBuf, PathBuf)>> = OnceLock::new();
    let (loader, libs, binary) = PARTS.get_or_init(prepare).clone()?;
    let mut cmd = Command::new(loader);
    cmd.arg("--library-path").arg(libs).arg(binary);
    Some(cmd)
}

fn prepare() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let dir = workspace_root().join("target").join("perf-analyzer");
    std::fs::create_dir_all(&dir).expect("target/perf-analyzer");
    let lock = std::fs::File::create(dir.join(".lock")).expect("lock file");
    lock.lock().expect("lock");
    let what = "perf_analyzer";
    let binary = dir.join("perf_analyzer");
    if !binary.is_file() {
        let python = super::python::client_python()?;
        let wheels = dir.join("wheels");
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
            ])
            .args(["--platform", "manylinux_2_38_x86_64", "-d"])
            .arg(&wheels)
            .arg(format!("perf-analyzer=={VERSION}"))
            .output()
            .expect("pip");
        if !out.status.success() {
            super::missing_real_part(
                what,
                &format!(
                    "pip download perf-analyzer: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
            return None;
        }
        let script = format!(
            "import glob, sys, zipfile\n\
             wheel = glob.glob({:?} + '/perf_analyzer-{VERSION}-*.whl')[0]\n\
             open(sys.argv[1], 'wb').write(zipfile.ZipFile(wheel).read('perf_analyzer/bin/perf_analyzer'))",
            wheels.display().to_string()
        );
        let partial = dir.join("perf_analyzer.partial");
        let out = Command::new(&python)
            .args(["-c", &script])
            .arg(&partial)
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "unpacking the wheel: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&partial, &binary).unwrap();
    }
    let libs = dir.join("root/usr/lib/x86_64-linux-gnu");
    let loader = libs.join("ld-linux-x86-64.so.2");
    if !(loader.is_file() && libs.join("libstdc++.so.6").exists()) {
        if let Err(why) = trixie_libraries(&dir) {
            super::missing_real_part(what, &why);
            return None;
        }
    }
    Some((loader, libs, binary))
}

/// Fetches and unpacks trixie's C and C++ runtime into `dir/root`.
fn trixie_libraries(dir: &Path) -> Result<(), String> {
    let apt = dir.join("apt");
    for sub in [
        "etc/sources.list.d",
        "etc/apt.conf.d",
        "etc/preferences.d",
        "etc/trusted.gpg.d",
        "state/lists/partial",
        "cache/archives/partial",
        "debs",
    ] {
        std::fs::create_dir_all(apt.join(sub)).map_err(|e| e.to_string())?;
    }
    std::fs::write(
        apt.join("etc/sources.list.d/trixie.sources"),
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n\
         Architectures: amd64\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )
    .map_err(|e| e.to_string())?;
    let a = apt.display();
    // Read before /etc/apt/apt.conf.d: with Dir::Etc::Parts here, the
    // system's apt configuration and state stay out of it entirely.
    let config = format!(
        "Dir::Etc \"{a}/etc\";\nDir::Etc::main \"/dev/null\";\nDir::Etc::Parts \"{a}/etc/apt.conf.d\";\n\
         Dir::Etc::SourceList \"/dev/null\";\nDir::Etc::SourceParts \"{a}/etc/sources.list.d\";\n\
         Dir::Etc::Preferences \"/dev/null\";\nDir::Etc::PreferencesParts \"{a}/etc/preferences.d\";\n\
         Dir::Etc::TrustedParts \"{a}/etc/trusted.gpg.d\";\nDir::State \"{a}/state\";\n\
         Dir::State::status \"/dev/null\";\nDir::Cache \"{a}/cache\";\nDir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\nAcquire::Languages \"none\";\nAPT::Architecture \"amd64\";\n\
         APT::Sandbox::User \"root\";\n"
    );
    let config_path = apt.join("apt.conf");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let apt_get = |args: &[&str], cwd: &Path| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("APT_CONFIG", &config_path)
            .current_dir(cwd)
            .output()
            .map_err(|e| format!("apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    apt_get(&["-q", "update"], dir)?;
    let debs = apt.join("debs");
    apt_get(
        &["-q", "download", "libc6", "libstdc++6", "libgcc-s1"],
        &debs,
    )?;
    let staging = dir.join("root.partial");
    let _ = std::fs::remove_dir_all(&staging);
    for deb in std::fs::read_dir(&debs).map_err(|e| e.to_string())? {
        let deb = deb.map_err(|e| e.to_string())?.path();
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&staging)
            .output()
            .map_err(|e| format!("dpkg-deb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "dpkg-deb -x {}: {}",
                deb.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&staging, &root).map_err(|e| e.to_string())
}
