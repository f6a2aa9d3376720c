//! What KServe (v0.20) does with a ClusterServingRuntime and an
//! InferenceService, written from its sources so the tests run the
//! `deploy/kserve/` manifests as a cluster would, without one:
//!
//! - the CRD's schema (`config/crd/full`: unknown fields are pruned, so a
//!   misspelt field silently does nothing; here it is an error);
//! - the runtimes' admission webhook (`servingruntime_webhook.go`): two
//!   auto-selected runtimes of one kind may not give a format (name, any
//!   case, and version) the same priority; PYTHONPATH is refused (v0.18+);
//! - runtime selection (`GetSupportingRuntimes`): a named runtime, or the
//!   auto-selected one of highest priority for the model's protocol (v1
//!   when unset);
//! - the controller's MLServer defaults (`SetRuntimeDefaults`,
//!   `SetMlServerDefaults`), which apply when the runtime's metadata says
//!   `serving.kserve.io/server-type: mlserver`, or, without that
//!   annotation, when it is named `kserve-mlserver`;
//! - the container: the runtime's `kserve-container` with the
//!   InferenceService's env merged over it by name, `{{.Labels.x}}`-style
//!   placeholders filled from the InferenceService's metadata (Go's
//!   html/template: a missing key is empty, values are HTML-escaped),
//!   `INFERENCE_SERVICE_NAME` (v0.17+);
//! - where the model is: `/mnt/models`, a read-only volume filled by the
//!   storage initializer, a modelcar's symlink for `oci://` (the default
//!   mode), a read-only image volume for `oci+native://`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

/// Where KServe puts the model in the container.
pub const MODEL_DIR: &str = "/mnt/models";

/// One entry of `supportedModelFormats`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFormat {
    pub name: String,
    pub version: Option<String>,
    pub auto_select: bool,
    pub priority: Option<i64>,
}

/// A ClusterServingRuntime, as the API server stores it.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub name: String,
    /// `metadata.annotations` (where the server type is read).
    pub annotations: BTreeMap<String, String>,
    pub disabled: bool,
    pub multi_model: bool,
    pub protocols: Vec<String>,
    pub formats: Vec<ModelFormat>,
    /// The `kserve-container`, as YAML.
    pub container: Value,
}

/// The fields the ClusterServingRuntime CRD's schema has under `spec`.
const SPEC_FIELDS: &[&str] = &[
    "affinity",
    "annotations",
    "builtInAdapter",
    "containers",
    "disabled",
    "grpcDataEndpoint",
    "grpcEndpoint",
    "hostIPC",
    "httpDataEndpoint",
    "imagePullSecrets",
    "labels",
    "multiModel",
    "nodeSelector",
    "protocolVersions",
    "replicas",
    "schedulerName",
    "storageHelper",
    "supportedModelFormats",
    "tolerations",
    "volumes",
    "workerSpec",
];

/// The fields of a Kubernetes container that the manifests may use.
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "env",
    "ports",
    "resources",
    "securityContext",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "volumeMounts",
    "imagePullPolicy",
    "workingDir",
];

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn unknown_fields(v: &Value, known: &[&str], what: &str) -> Result<(), String> {
    for key in v.as_mapping().into_iter().flat_map(|m| m.keys()) {
        let key = key.as_str().unwrap_or("?");
        if !known.contains(&key) {
            return Err(format!("{what}: unknown field {key:?} (the CRD prunes it)"));
        }
    }
    Ok(())
}

impl Runtime {
    /// Reads a ClusterServingRuntime manifest, checking it against the CRD.
    pub fn from_file(path: &Path) -> Result<Runtime, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let yaml: Value =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_yaml(&yaml)
    }

    pub fn from_yaml(yaml: &Value) -> Result<Runtime, String> {
        if yaml["apiVersion"].as_str() != Some("serving.kserve.io/v1alpha1")
            || yaml["kind"].as_str() != Some("ClusterServingRuntime")
        {
            return Err("not a serving.kserve.io/v1alpha1 ClusterServingRuntime".into());
        }
        let name = yaml["metadata"]["name"]
            .as_str()
            .ok_or("metadata.name is required")?
            .to_owned();
        let spec = &yaml["spec"];
        unknown_fields(spec, SPEC_FIELDS, "spec")?;
        let mut formats = Vec::new();
        for f in spec["supportedModelFormats"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            unknown_fields(
                f,
                &["name", "version", "autoSelect", "priority"],
                "supportedModelFormats",
            )?;
            let priority = f["priority"].as_i64();
            if priority.is_some_and(|p| p < 1) {
                return Err("supportedModelFormats.priority: minimum is 1".into());
            }
            formats.push(ModelFormat {
                name: f["name"]
                    .as_str()
                    .ok_or("supportedModelFormats.name is required")?
                    .to_owned(),
                version: f["version"].as_str().map(str::to_owned),
                auto_select: f["autoSelect"].as_bool().unwrap_or(false),
                priority,
            });
        }
        let containers = spec["containers"]
            .as_sequence()
            .ok_or("spec.containers is required")?;
        for c in containers {
            unknown_fields(c, CONTAINER_FIELDS, "container")?;
            if c["name"].as_str().is_none() {
                return Err("every container needs a name".into());
            }
        }
        let container = containers
            .iter()
            .find(|c| c["name"].as_str() == Some("kserve-container"))
            .cloned()
            .ok_or("failed to find kserve-container in ServingRuntime containers")?;
        Ok(Runtime {
            name,
            annotations: string_map(&yaml["metadata"]["annotations"]),
            disabled: spec["disabled"].as_bool().unwrap_or(false),
            multi_model: spec["multiModel"].as_bool().unwrap_or(false),
            protocols: strings(&spec["protocolVersions"]),
            formats,
            container,
        })
    }

    /// KServe v0.20's stock ClusterServingRuntimes that serve a format ours
    /// serves (`config/runtimes/`): what the webhook compares ours with.
    pub fn stock() -> Vec<Runtime> {
        let runtime = |name: &str,
                       server_type: &str,
                       protocols: &[&str],
                       formats: &[(&str, &str, bool, i64)]| {
            Runtime {
                name: name.into(),
                annotations: [(
                    "serving.kserve.io/server-type".to_owned(),
                    server_type.to_owned(),
                )]
                .into(),
                disabled: false,
                multi_model: false,
                protocols: protocols.iter().map(|p| p.to_string()).collect(),
                formats: formats
                    .iter()
                    .map(|(n, v, auto, p)| ModelFormat {
                        name: n.to_string(),
                        version: Some(v.to_string()),
                        auto_select: *auto,
                        priority: Some(*p),
                    })
                    .collect(),
                container: Value::Null,
            }
        };
        vec![
            runtime(
                "kserve-mlserver",
                "mlserver",
                &["v2"],
                &[
                    ("sklearn", "0", true, 2),
                    ("sklearn", "1", true, 2),
                    ("xgboost", "1", true, 2),
                    ("xgboost", "2", true, 2),
                    ("lightgbm", "3", true, 2),
                    ("lightgbm", "4", true, 2),
                    ("mlflow", "1", true, 1),
                    ("mlflow", "2", true, 1),
                ],
            ),
            runtime(
                "kserve-sklearnserver",
                "sklearnserver",
                &["v1", "v2"],
                &[("sklearn", "1", true, 1)],
            ),
            runtime(
                "kserve-xgbserver",
                "xgbserver",
                &["v1", "v2"],
                &[("xgboost", "2", true, 1)],
            ),
            runtime(
                "kserve-lgbserver",
                "lgbserver",
                &["v1", "v2"],
                &[("lightgbm", "4", true, 1)],
            ),
            runtime(
                "kserve-predictiveserver",
                "predictiveserver",
                &["v1", "v2"],
                &[
                    ("sklearn", "1", false, 3),
                    ("xgboost", "2", false, 3),
                    ("lightgbm", "4", false, 3),
                ],
            ),
        ]
    }

    /// The server type the controller reads: the annotation, or, without
    /// it, the name `kserve-mlserver`.
    fn server_type(&self) -> Option<&str> {
        match self.annotations.get("serving.kserve.io/server-type") {
            Some(t) => Some(t),
            None => (self.name == "kserve-mlserver").then_some("mlserver"),
        }
    }

    fn supports_protocol(&self, protocol: &str) -> bool {
        self.protocols.is_empty() || self.protocols.iter().any(|p| p == protocol)
    }
}

/// The ClusterServingRuntime admission webhook on create or update of
/// `new`, with `existing` already in the cluster (a runtime of the same
/// name is the one being updated: it is not compared with itself).
pub fn admit_runtime(new: &Runtime, existing: &[Runtime]) -> Result<(), String> {
    if new.disabled {
        return Ok(());
    }
    if let Some(name) = blocked_env(&new.container) {
        return Err(format!(
            "the ClusterServingRuntime {:?} is invalid: setting {name} in container \"kserve-container\" is not allowed for security reasons",
            new.name
        ));
    }
    // KServe checks this inside its loop over the existing runtimes.
    let mut priorities: BTreeMap<&str, i64> = BTreeMap::new();
    for f in new
        .formats
        .iter()
        .filter(|f| f.auto_select && !existing.is_empty())
    {
        if let Some(p) = f.priority {
            if *priorities.entry(&f.name).or_insert(p) != p {
                return Err(format!(
                    "different priorities assigned for the model format {} under the clusterservingruntime {}",
                    f.name, new.name
                ));
            }
        }
    }
    for old in existing {
        if old.multi_model != new.multi_model || old.disabled || old.name == new.name {
            continue;
        }
        if !new.protocols.iter().any(|p| old.protocols.contains(p)) {
            continue;
        }
        for a in new.formats.iter().filter(|f| f.auto_select) {
            for b in old.formats.iter().filter(|f| f.auto_select) {
                if a.name.eq_ignore_ascii_case(&b.name)
                    && a.version == b.version
                    && a.priority.is_some()
                    && a.priority == b.priority
                {
                    return Err(format!(
                        "same priority assigned for the model format {} in the clusterservingruntimes {} and {}",
                        a.name, old.name, new.name
                    ));
                }
            }
        }
    }
    Ok(())
}

fn blocked_env(container: &Value) -> Option<String> {
    container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .find(|n| *n == "PYTHONPATH")
        .map(str::to_owned)
}

/// An InferenceService with one `predictor.model`.
#[derive(Debug, Clone)]
pub struct InferenceService {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub format: String,
    pub format_version: Option<String>,
    pub runtime: Option<String>,
    pub protocol: Option<String>,
    pub storage_uri: Option<String>,
    /// The model container's own env, in order.
    pub env: Vec<(String, String)>,
}

impl InferenceService {
    pub fn from_file(path: &Path) -> Result<InferenceService, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let yaml: Value =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if yaml["kind"].as_str() != Some("InferenceService") {
            return Err("not an InferenceService".into());
        }
        let model = &yaml["spec"]["predictor"]["model"];
        let isvc = InferenceService {
            name: yaml["metadata"]["name"]
                .as_str()
                .ok_or("metadata.name is required")?
                .to_owned(),
            namespace: yaml["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned(),
            labels: string_map(&yaml["metadata"]["labels"]),
            annotations: string_map(&yaml["metadata"]["annotations"]),
            format: model["modelFormat"]["name"]
                .as_str()
                .ok_or("predictor.model.modelFormat.name is required")?
                .to_owned(),
            format_version: model["modelFormat"]["version"].as_str().map(str::to_owned),
            runtime: model["runtime"].as_str().map(str::to_owned),
            protocol: model["protocolVersion"].as_str().map(str::to_owned),
            storage_uri: model["storageUri"].as_str().map(str::to_owned),
            env: env_pairs(&model["env"]),
        };
        if let Some(name) = blocked_env(model) {
            return Err(format!(
                "the InferenceService {:?} is invalid: setting {name} in container \"kserve-container\" is not allowed for security reasons",
                isvc.name
            ));
        }
        Ok(isvc)
    }

    /// A minimal InferenceService: a model of `format` at `storage_uri`.
    pub fn new(name: &str, format: &str, storage_uri: Option<&str>) -> InferenceService {
        InferenceService {
            name: name.into(),
            namespace: "default".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            format: format.into(),
            format_version: None,
            runtime: None,
            protocol: None,
            storage_uri: storage_uri.map(str::to_owned),
            env: Vec::new(),
        }
    }
}

/// A container's `env` as (name, value) pairs (`valueFrom` entries as
/// empty values).
pub fn env_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// How `/mnt/models` is made in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelVolume {
    /// The storage initializer's copy; read-only unless the annotation
    /// `storage.kserve.io/readonly` is `"false"`.
    Copied { read_only: bool },
    /// A modelcar (`oci://`): `/mnt/models` is a symlink to the model
    /// image's `/models`, through `/proc/<pid>/root`.
    Symlink,
    /// `oci+native://`: an image volume, read-only.
    Image,
}

/// The predictor container KServe runs.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The runtime chosen.
    pub runtime: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// How `/mnt/models` is made; `None` without a storageUri.
    pub model_volume: Option<ModelVolume>,
    pub drops_all_capabilities: bool,
    pub no_privilege_escalation: bool,
}

impl Rendered {
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The runtime the controller picks for `isvc` among `runtimes`.
pub fn select_runtime<'a>(
    isvc: &InferenceService,
    runtimes: &'a [Runtime],
) -> Result<&'a Runtime, String> {
    let format_matches = |f: &ModelFormat, auto_only: bool| {
        f.name == isvc.format
            && (!auto_only || f.auto_select)
            && (isvc.format_version.is_none() || f.version == isvc.format_version)
    };
    if let Some(name) = &isvc.runtime {
        let r = runtimes.iter().find(|r| &r.name == name).ok_or_else(|| {
            format!("No ServingRuntimes or ClusterServingRuntimes with the name: {name}")
        })?;
        if r.disabled {
            return Err(format!("specified runtime {name} is disabled"));
        }
        if let Some(p) = &isvc.protocol {
            if !r.supports_protocol(p) {
                return Err(format!(
                    "specified runtime {name} does not support specified protocol version"
                ));
            }
        }
        if !r.formats.iter().any(|f| format_matches(f, false)) {
            return Err(format!(
                "specified runtime {name} does not support specified framework/version"
            ));
        }
        return Ok(r);
    }
    let protocol = isvc.protocol.as_deref().unwrap_or("v1");
    let mut candidates: Vec<&Runtime> = runtimes
        .iter()
        .filter(|r| {
            !r.disabled
                && !r.multi_model
                && r.supports_protocol(protocol)
                && r.formats.iter().any(|f| format_matches(f, true))
        })
        .collect();
    let priority = |r: &Runtime| {
        r.formats
            .iter()
            .find(|f| f.name == isvc.format)
            .and_then(|f| f.priority)
    };
    // Name order stands in for KServe's pre-sort (protocol, then newest).
    candidates.sort_by(|a, b| priority(b).cmp(&priority(a)).then(a.name.cmp(&b.name)));
    candidates.first().copied().ok_or_else(|| {
        format!(
            "no runtime found to support predictor with model type: {}",
            isvc.format
        )
    })
}

/// The container KServe runs for `isvc`, with `runtimes` in the cluster.
pub fn render(isvc: &InferenceService, runtimes: &[Runtime]) -> Result<Rendered, String> {
    let runtime = select_runtime(isvc, runtimes)?;
    let mut isvc = isvc.clone();
    // SetRuntimeDefaults: on the controller's in-memory copy.
    if runtime.server_type() == Some("mlserver") {
        isvc.protocol.get_or_insert_with(|| "v2".into());
        let add = |env: &mut Vec<(String, String)>, k: &str, v: &str| {
            if !env.iter().any(|(n, _)| n == k) {
                env.push((k.into(), v.into()));
            }
        };
        if isvc.storage_uri.is_some() {
            add(&mut isvc.env, "MLSERVER_MODEL_NAME", &isvc.name.clone());
            add(&mut isvc.env, "MLSERVER_MODEL_URI", MODEL_DIR);
        } else {
            add(&mut isvc.env, "MLSERVER_LOAD_MODELS_AT_STARTUP", "false");
        }
        let class = match isvc.format.as_str() {
            "xgboost" => "mlserver_xgboost.XGBoostModel",
            "lightgbm" => "mlserver_lightgbm.LightGBMModel",
            "mlflow" => "mlserver_mlflow.MLflowRuntime",
            _ => "mlserver_sklearn.SKLearnModel",
        };
        isvc.labels.insert("modelClass".into(), class.into());
    }
    isvc.annotations
        .entry("modelFormat".into())
        .or_insert_with(|| isvc.format.clone());

    // The runtime's container with the InferenceService's env merged over
    // it by name (strategic merge: the InferenceService wins, new names
    // are appended).
    let container = &runtime.container;
    let mut env = env_pairs(&container["env"]);
    for (k, v) in &isvc.env {
        match env.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    let fill = |s: &str| fill_placeholders(s, &isvc);
    let env = env
        .into_iter()
        .map(|(k, v)| Ok((k, fill(&v)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let command = strings(&container["command"])
        .iter()
        .map(|s| fill(s))
        .collect::<Result<_, _>>()?;
    let args = strings(&container["args"])
        .iter()
        .map(|s| fill(s))
        .collect::<Result<_, _>>()?;
    let mut env: Vec<(String, String)> = env;
    // INFERENCE_SERVICE_NAME, on every container of the pod.
    env.retain(|(k, _)| k != "INFERENCE_SERVICE_NAME");
    env.push(("INFERENCE_SERVICE_NAME".into(), isvc.name.clone()));

    let model_volume = isvc.storage_uri.as_deref().map(|uri| {
        if uri.starts_with("oci+native://") {
            ModelVolume::Image
        } else if uri.starts_with("oci://") || uri.starts_with("oci+modelcar://") {
            env.retain(|(k, _)| k != "MODEL_INIT_MODE");
            env.push(("MODEL_INIT_MODE".into(), "async".into()));
            ModelVolume::Symlink
        } else {
            ModelVolume::Copied {
                read_only: isvc
                    .annotations
                    .get("storage.kserve.io/readonly")
                    .is_none_or(|v| v != "false"),
            }
        }
    });
    let security = &container["securityContext"];
    Ok(Rendered {
        runtime: runtime.name.clone(),
        image: container["image"].as_str().unwrap_or_default().to_owned(),
        command,
        args,
        env,
        model_volume,
        drops_all_capabilities: strings(&security["capabilities"]["drop"]) == ["ALL"],
        no_privilege_escalation: security["allowPrivilegeEscalation"].as_bool() == Some(false),
    })
}

/// `ReplacePlaceholders`: Go's html/template over the container, with the
/// InferenceService's metadata as data. Only the forms KServe's runtimes
/// use are understood; anything else is an error, as a field Go's
/// ObjectMeta lacks would be.
fn fill_placeholders(s: &str, isvc: &InferenceService) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("unclosed action in {s:?}"))?;
        let action = rest[start + 2..start + end].trim();
        let value = match action
            .split_once('.')
            .map(|(_, a)| a.split_once('.').unwrap_or((a, "")))
        {
            Some(("Name", "")) => isvc.name.clone(),
            Some(("Namespace", "")) => isvc.namespace.clone(),
            Some(("Labels", key)) if valid_key(key) => {
                isvc.labels.get(key).cloned().unwrap_or_default()
            }
            Some(("Annotations", key)) if valid_key(key) => {
                isvc.annotations.get(key).cloned().unwrap_or_default()
            }
            _ => {
                return Err(format!(
                    "failed to replace placeholders: can't evaluate {action:?}"
                ))
            }
        };
        out.push_str(&html_escape(&value));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A key Go's template parser takes after a dot: letters, digits, `_`.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
        .replace('"', "&#34;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_as_go_fills_them() {
        let mut isvc = InferenceService::new("m", "sklearn", None);
        isvc.labels.insert("a".into(), "x<y".into());
        assert_eq!(
            fill_placeholders("{{.Labels.a}}-{{.Name}}", &isvc).unwrap(),
            "x&lt;y-m"
        );
        assert_eq!(fill_placeholders("{{.Labels.missing}}", &isvc).unwrap(), "");
        assert!(fill_placeholders("{{.Foo}}", &isvc).is_err());
        assert!(fill_placeholders("{{.Labels.a-b}}", &isvc).is_err());
    }
}
