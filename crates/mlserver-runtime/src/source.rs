//! Where a server's models come from when not from its folder.

use futures::future::BoxFuture;
use mlserver_settings::ModelSettings;

use crate::MLServerError;

/// Where a repository's models come from instead of its folder's
/// `model-settings.json` files: a user's repository class
/// (`model_repository_implementation`), asked as MLServer's start and
/// repository handlers ask its `ModelRepository`.
pub trait ModelSource: Send + Sync {
    /// Every model it offers (`list()`).
    fn list(&self) -> BoxFuture<'_, Result<Vec<ModelSettings>, MLServerError>>;
    /// The versions of `name` (`find(name)`); none when it has no such model.
    fn find<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ModelSettings>, MLServerError>>;
}
