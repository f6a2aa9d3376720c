"""A worker process of mlserver-rs: serves MLServer `MLModel` classes, unchanged.

The Rust server starts one per `parallel_workers` and environment
(`python -m mlserver_rs_worker <socket>`) and talks to it over a Unix domain
socket. Everything the user's code sees comes from the real `mlserver`
package: `ModelSettings` (with `_source`, so imports and `get_model_uri`
resolve as in MLServer), `MLModel`, `types`, its codecs and converters.

Modules:

- `wire`: the frames and bodies, as the Rust side (`src/frame.rs`) writes them;
- `mlserver_api`: every step done MLServer's own way (models, requests,
  replies, custom handlers, metrics);
- `fast`: the fast paths that stand in for some of those steps, all off
  with `MLSERVER_RS_FAST_PATHS=0`;
- `calls`: one task per call, streams with flow control;
- `connection`: the socket, batching of replies, busy polling, logs.
"""
