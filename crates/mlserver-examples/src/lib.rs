//! Example runtimes served by the default `mlserver` binary, each a few
//! lines of [`MLModel`](mlserver_runtime::MLModel): a numeric one ([`SumModel`]), one that returns what
//! it gets ([`EchoModel`], handy for benchmarks and client tests) and a
//! string one ([`TextModel`]).

mod echo;
mod sum;
mod text;

pub use echo::EchoModel;
pub use sum::SumModel;
pub use text::TextModel;

use mlserver_runtime::RuntimeRegistry;

/// `implementation` names of the example runtimes.
pub const SUM: &str = "sum";
/// The `echo` runtime's name.
pub const ECHO: &str = "echo";
/// The `text` runtime's name.
pub const TEXT: &str = "text";

/// Registers the example runtimes.
pub fn register(runtimes: &mut RuntimeRegistry) {
    runtimes.register::<SumModel>(SUM);
    runtimes.register::<EchoModel>(ECHO);
    runtimes.register::<TextModel>(TEXT);
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use mlserver_runtime::{ModelContext, ModelSettings};

    pub(crate) fn context(extra: serde_json::Value) -> ModelContext {
        let settings: ModelSettings = serde_json::from_value(serde_json::json!({
            "name": "m",
            "implementation": "x",
            "parameters": {"extra": extra}
        }))
        .unwrap();
        ModelContext::new(Arc::new(settings))
    }
}
