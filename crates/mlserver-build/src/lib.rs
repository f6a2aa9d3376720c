//! Images for model folders, as `mlserver dockerfile` and `mlserver build`
//! make them.
//!
//! - [`dockerfile`]: looks at a folder (a Rust runtime crate? conda or pip
//!   environment? embedded settings?) and renders the Dockerfile and ignore
//!   file from the handlebars templates in `templates/`.
//! - [`dockerignore`]: `.dockerignore` patterns with Docker's matching rules.
//! - [`build_context`]: the build context as a tar stream, filtered by them.
//! - [`docker`]: the build itself, through the Docker Engine API.

pub mod build_context;
pub mod docker;
pub mod dockerfile;
pub mod dockerignore;
