//! `mlserver build`: the generated Dockerfile plus the folder, sent as one
//! tar stream to the Docker Engine API (bollard; no `docker` CLI needed).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use bollard::query_parameters::BuildImageOptions;
use bollard::Docker;
use futures::StreamExt;

use crate::build_context::{build_context, ignore_rules, ContextError};
use crate::dockerfile::{
    inspect, render_dockerfile, render_dockerignore, BaseImages, DockerfileError,
};

/// Name of the generated Dockerfile inside the build context: one a model
/// folder will not have, so the folder's own `Dockerfile` stays untouched.
pub const CONTEXT_DOCKERFILE: &str = ".mlserver.Dockerfile";

/// Why `mlserver build` failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No Docker daemon answered at `host`.
    #[error(
        "cannot reach a Docker daemon at {host} ({reason}); start one, set DOCKER_HOST, \
         or write the Dockerfile with `mlserver dockerfile` and build it with Kaniko or Buildah"
    )]
    NoDaemon {
        /// The daemon address tried (`DOCKER_HOST`, else the default socket).
        host: String,
        /// Why connecting or pinging failed.
        reason: String,
    },
    /// The folder could not be inspected, or its Dockerfile or ignore file rendered.
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// The build context could not be made.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A step failed: Docker's message, then the step and the tool's own
    /// error lines from its output (pip's `ERROR: ...`).
    #[error("the image build failed: {0}")]
    Failed(String),
    /// Any other error from the daemon or the connection to it.
    #[error("the Docker daemon answered with an error: {0}")]
    Daemon(String),
}

/// What `mlserver build` was asked for.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The image name and tag, as `docker build -t`.
    pub tag: String,
    /// Build without the layer cache (`--no-cache`).
    pub no_cache: bool,
    /// Always pull newer base images (`--pull`).
    pub pull: bool,
    /// The target platform, e.g. `linux/arm64`; the daemon's default when `None`.
    pub platform: Option<String>,
    /// Build args (`--build-arg KEY=VALUE`), e.g. to pick other base images.
    pub build_args: Vec<(String, String)>,
    /// The network of `RUN` steps (`host`, `none`, a network's name), as
    /// `docker build --network`; the daemon's default when `None`.
    pub network: Option<String>,
}

/// The result of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The image ID, when the daemon reported one.
    pub id: Option<String>,
    /// The tag the image was given.
    pub tag: String,
}

/// Docker's default socket, where bollard connects without `DOCKER_HOST`.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Where the daemon is: `DOCKER_HOST`, else the default socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_DOCKER_HOST.to_owned())
}

/// Connects and checks that a daemon answers, so a missing daemon is one
/// clear error before any work.
pub async fn connect() -> Result<Docker, BuildError> {
    let host = docker_host();
    let no_daemon = |reason: String| BuildError::NoDaemon {
        host: host.clone(),
        reason,
    };
    let docker = Docker::connect_with_defaults().map_err(|e| no_daemon(e.to_string()))?;
    docker.ping().await.map_err(|e| no_daemon(e.to_string()))?;
    Ok(docker)
}

/// Builds `folder` into an image, writing Docker's progress lines to `out`
/// as they arrive.
pub async fn build(
    docker: &Docker,
    folder: &Path,
    request: &BuildRequest,
    images: &BaseImages,
    out: &mut (dyn Write + Send),
) -> Result<Built, BuildError> {
    let info = inspect(folder)?;
    let dockerfile = render_dockerfile(&info, images)?;
    // The folder's own ignore rules, else the ones `mlserver dockerfile -i`
    // would write.
    let ignore = ignore_rules(folder, &render_dockerignore()?)?;
    let context = build_context(
        folder,
        &ignore,
        &[(CONTEXT_DOCKERFILE, dockerfile.as_bytes())],
    )?;

    let options = BuildImageOptions {
        dockerfile: CONTEXT_DOCKERFILE.to_owned(),
        t: Some(request.tag.clone()),
        nocache: request.no_cache,
        pull: request.pull.then(|| "true".to_owned()),
        rm: true,
        forcerm: true,
        platform: request.platform.clone().unwrap_or_default(),
        networkmode: request.network.clone(),
        buildargs: (!request.build_args.is_empty()).then(|| {
            request
                .build_args
                .iter()
                .cloned()
                .collect::<HashMap<_, _>>()
        }),
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut id = None;
    let mut step = StepLog::default();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(BuildError::Failed(step.explain(&error)))
            }
            Err(e) => return Err(BuildError::Daemon(e.to_string())),
        };
        if let Some(detail) = info.error_detail {
            return Err(BuildError::Failed(
                step.explain(&detail.message.unwrap_or_default()),
            ));
        }
        if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
            step.record(text);
            // Progress goes to the user; a closed stdout must not fail the build.
            let _ = out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
        }
        if let Some(aux) = info.aux {
            id = aux.id.or(id);
        }
    }
    Ok(Built {
        id,
        tag: request.tag.clone(),
    })
}

/// The output of the step being built, so a failure can say which step
/// failed and show the tool's own error (pip's `ERROR: ...` lines) beside
/// Docker's "returned a non-zero code", without replaying the whole log.
#[derive(Debug, Default)]
struct StepLog {
    /// `Step 3/9 : RUN ...`, the current step's heading.
    heading: Option<String>,
    /// Its last lines of output (bounded: a step may print megabytes).
    lines: std::collections::VecDeque<String>,
}

impl StepLog {
    const KEPT: usize = 200;
    const SHOWN: usize = 6;

    fn record(&mut self, text: &str) {
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            if line.starts_with("Step ") && line.contains(" : ") {
                self.heading = Some(line.to_owned());
                self.lines.clear();
            } else if !line.starts_with(" ---> ") {
                if self.lines.len() == Self::KEPT {
                    self.lines.pop_front();
                }
                self.lines.push_back(line.to_owned());
            }
        }
    }

    /// Docker's message, the failing step, and the error lines of its
    /// output (else its last lines).
    fn explain(&self, message: &str) -> String {
        let mut out = message.trim().to_owned();
        if let Some(heading) = &self.heading {
            out.push_str(&format!("\n  at {heading}"));
        }
        let is_error = |l: &&String| {
            let l = l.trim_start();
            l.starts_with("ERROR") || l.starts_with("error") || l.starts_with("E: ")
        };
        let mut shown: Vec<&String> = self.lines.iter().filter(is_error).collect();
        if shown.is_empty() {
            shown = self.lines.iter().collect();
        }
        let skip = shown.len().saturating_sub(Self::SHOWN);
        for line in &shown[skip..] {
            out.push_str(&format!("\n  | {line}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_shows_the_tools_own_error() {
        let mut log = StepLog::default();
        log.record("Step 1/4 : FROM base\n ---> abc\n");
        log.record("Step 3/4 : RUN pip install -r /tmp/requirements.txt\n");
        log.record(" ---> Running in 1234\nCollecting x\n");
        log.record("ERROR: Could not find a version that satisfies the requirement nope-xyz (from versions: none)\n");
        log.record("ERROR: No matching distribution found for nope-xyz\n");
        let text = log.explain("The command '/bin/sh -c pip ...' returned a non-zero code: 1");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].contains("Step 3/4 : RUN pip install"), "{text}");
        assert!(
            lines[3].contains("No matching distribution found for nope-xyz"),
            "{text}"
        );
        assert!(!text.contains("Collecting"), "{text}");

        // No error lines: the step's last lines.
        let mut log = StepLog::default();
        log.record("Step 2/2 : RUN false\n");
        for i in 0..10 {
            log.record(&format!("line {i}\n"));
        }
        let text = log.explain("failed");
        assert!(
            text.ends_with("| line 9") && !text.contains("line 3"),
            "{text}"
        );
    }
}
