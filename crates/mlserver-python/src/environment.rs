//! Which Python runs a model: MLServer's per-model environments.

use std::io::Read;
use std::path::{Path, PathBuf};

use mlserver_runtime::MLServerError;
use mlserver_settings::ModelSettings;
use sha2::{Digest, Sha256};

use crate::PythonConfig;

/// The interpreter for a model: `parameters.environment_path` (an existing
/// environment), `parameters.environment_tarball` (a conda-pack tarball,
/// unpacked once per content hash under `environments_dir`), else the
/// server's default.
pub(crate) async fn interpreter(
    config: &PythonConfig,
    settings: &ModelSettings,
) -> Result<PathBuf, MLServerError> {
    let parameters = settings.parameters.as_ref();
    if let Some(path) = parameters.and_then(|p| p.environment_path.as_deref()) {
        let env = PathBuf::from(mlserver_settings::expand_vars(path));
        let python = env.join("bin").join("python");
        if !python.exists() {
            return Err(MLServerError::bad_request(format!(
                "model {}: environment_path {} has no bin/python",
                settings.name,
                env.display()
            )));
        }
        return Ok(python);
    }
    if let Some(tarball) = parameters.and_then(|p| p.environment_tarball.as_deref()) {
        let tarball = match &settings.source {
            Some(source) if Path::new(tarball).is_relative() => {
                source.parent().unwrap_or(Path::new(".")).join(tarball)
            }
            _ => PathBuf::from(tarball),
        };
        let dir = config.environments_dir.clone();
        let owner = format!("model {}", settings.name);
        return tokio::task::spawn_blocking(move || unpack(&owner, &tarball, &dir))
            .await
            .map_err(|e| MLServerError::internal(format!("unpacking failed: {e}")))?;
    }
    Ok(config.python.clone())
}

/// Unpacks a packed environment (conda-pack, or a venv packed with its
/// interpreter's prefix intact) once per content hash under
/// `environments_dir`, runs its `conda-unpack` there if it has one (which
/// rewrites the prefixes conda-pack left), and returns its `bin/python`.
/// `owner` names who asked, for messages (`model iris`).
pub(crate) fn unpack(
    owner: &str,
    tarball: &Path,
    environments_dir: &Path,
) -> Result<PathBuf, MLServerError> {
    let fail = |what: String| MLServerError::bad_request(format!("{owner}: {what}"));
    let mut file = std::fs::File::open(tarball).map_err(|e| {
        fail(format!(
            "cannot open environment_tarball {}: {e}",
            tarball.display()
        ))
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| fail(format!("cannot read {}: {e}", tarball.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let target = environments_dir.join(&hash);
    let python = target.join("bin").join("python");
    if python.exists() {
        return Ok(python);
    }
    std::fs::create_dir_all(environments_dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", environments_dir.display())))?;
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(environments_dir)
        .map_err(|e| {
            fail(format!(
                "cannot unpack into {}: {e}",
                environments_dir.display()
            ))
        })?;
    let file = std::fs::File::open(tarball)
        .map_err(|e| fail(format!("cannot open {}: {e}", tarball.display())))?;
    let gz = tarball.extension().is_some_and(|e| e == "gz" || e == "tgz");
    let result = if gz {
        tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(staging.path())
    } else {
        tar::Archive::new(file).unpack(staging.path())
    };
    result.map_err(|e| fail(format!("cannot unpack {}: {e}", tarball.display())))?;
    if !staging.path().join("bin").join("python").exists() {
        return Err(fail(format!(
            "{} has no bin/python (make it with conda-pack)",
            tarball.display()
        )));
    }
    let staged = staging.keep();
    if std::fs::rename(&staged, &target).is_err() {
        // Another model unpacked the same tarball meanwhile: use theirs.
        let _ = std::fs::remove_dir_all(&staged);
        return Ok(python);
    }
    // Prefixes are rewritten for where the environment now is, so this
    // runs in place, after the move.
    let conda_unpack = target.join("bin").join("conda-unpack");
    if conda_unpack.is_file() {
        let out = std::process::Command::new(&python)
            .arg(&conda_unpack)
            .output()
            .map_err(|e| fail(format!("cannot run {}: {e}", conda_unpack.display())))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&target);
            return Err(fail(format!(
                "conda-unpack failed in {}: {}",
                target.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tarball_unpacks_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = dir.path().join("env.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&tarball).unwrap(),
                flate2::Compression::fast(),
            );
            let mut builder = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(3);
            header.set_mode(0o755);
            header.set_cksum();
            builder
                .append_data(&mut header, "bin/python", &b"#!x"[..])
                .unwrap();
            builder.into_inner().unwrap().finish().unwrap();
        }
        let envs = dir.path().join("envs");
        let a = unpack("m", &tarball, &envs).unwrap();
        let b = unpack("m", &tarball, &envs).unwrap();
        assert_eq!(a, b);
        assert!(a.exists());
        assert_eq!(std::fs::read_dir(&envs).unwrap().count(), 1);
        let err = unpack("m", &dir.path().join("missing.tar.gz"), &envs).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }
}
