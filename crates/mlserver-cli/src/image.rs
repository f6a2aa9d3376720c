//! `mlserver build` and `mlserver dockerfile`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use mlserver_build::docker::{self, BuildRequest};
use mlserver_build::dockerfile::{
    inspect, is_ours_or_absent, render_dockerfile, render_dockerignore, BaseImages,
};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The folder to build (its .dockerignore applies).
    pub folder: PathBuf,
    /// Name and tag of the image, e.g. `my-custom-server:0.1`.
    #[arg(short = 't', long = "tag")]
    pub tag: String,
    /// Build without the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Always pull newer base images.
    #[arg(long)]
    pub pull: bool,
    /// Target platform, e.g. `linux/arm64`.
    #[arg(long)]
    pub platform: Option<String>,
    /// A build arg, e.g. `--build-arg MLSERVER_IMAGE=registry/mlserver-rs:0.1`.
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub build_args: Vec<(String, String)>,
    /// The network of RUN steps (`host`, `none`, a network name), as `docker
    /// build --network`: `pip install` needs one that reaches the index.
    #[arg(long)]
    pub network: Option<String>,
}

#[derive(Debug, Args)]
pub struct DockerfileArgs {
    /// The folder the image is for; the Dockerfile is written into it.
    pub folder: PathBuf,
    /// Also write the ignore file (as `.dockerignore` and `Dockerfile.dockerignore`).
    #[arg(short = 'i', long)]
    pub include_dockerignore: bool,
    /// Overwrite files that `mlserver dockerfile` did not write.
    #[arg(long)]
    pub force: bool,
    /// Print the Dockerfile instead of writing it.
    #[arg(long)]
    pub stdout: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub(crate) fn check_folder(folder: &Path) -> anyhow::Result<()> {
    if !folder.is_dir() {
        bail!("{} does not exist or is not a directory", folder.display());
    }
    Ok(())
}

pub(crate) fn dockerfile(args: DockerfileArgs) -> anyhow::Result<()> {
    check_folder(&args.folder)?;
    let info = inspect(&args.folder)?;
    let text = render_dockerfile(&info, &BaseImages::default())?;
    if args.stdout {
        print!("{text}");
        return Ok(());
    }
    let mut files = vec![(args.folder.join("Dockerfile"), text)];
    if args.include_dockerignore {
        let ignore = render_dockerignore()?;
        files.push((args.folder.join(".dockerignore"), ignore.clone()));
        files.push((args.folder.join("Dockerfile.dockerignore"), ignore));
    }
    // Check every target before writing any, so a refusal leaves nothing half done.
    for (path, _) in &files {
        if !args.force && !is_ours_or_absent(path) {
            bail!(
                "{} exists and was not written by `mlserver dockerfile`; use --force to overwrite it",
                path.display()
            );
        }
    }
    for (path, text) in files {
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub(crate) fn build(args: BuildArgs) -> anyhow::Result<()> {
    check_folder(&args.folder)?;
    let request = BuildRequest {
        tag: args.tag,
        no_cache: args.no_cache,
        pull: args.pull,
        platform: args.platform,
        build_args: args.build_args,
        network: args.network,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let built = runtime.block_on(async {
        let docker = docker::connect().await?;
        let mut stdout = std::io::stdout();
        docker::build(
            &docker,
            &args.folder,
            &request,
            &BaseImages::default(),
            &mut stdout,
        )
        .await
    })?;
    match built.id {
        Some(id) => println!("Built image {id} as {}", built.tag),
        None => println!("Built image {}", built.tag),
    }
    Ok(())
}
