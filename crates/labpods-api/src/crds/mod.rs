//! The CustomResourceDefinitions generated from the types, as objects and as the YAML files
//! committed under `crds/` (one source for `cargo xtask crds` and the drift test).

mod yaml;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube_core::CustomResourceExt;

use crate::validation::rules::{Kind, RULES};
use crate::{LabHost, Lease, PodRequest};

/// Every CRD of the API, in a fixed order, as they should be installed. Prefer this over
/// `LabHost::crd()`: it also attaches the CEL rules of [`RULES`] where their checks say, and
/// bounds the fields of the Kubernetes types a spec embeds (a role's `LabelSelector`: at most
/// [`MAX_SELECTOR_TERMS`] terms and [`MAX_SELECTOR_VALUES`] values), which the apiserver
/// needs to estimate the rules' cost.
///
/// `Option` fields stay `nullable`, as schemars renders them. (Kubernetes 1.20 published
/// nullable fields without a type, so these CRDs used to strip `nullable`; OpenAPI v3, which
/// kubectl explains from, keeps the type.) With `nullable`, an explicit `null` is stored
/// rather than pruned: the CEL rules read it as absent (`has()` is false) and serde as `None`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![LabHost::crd(), PodRequest::crd(), Lease::crd()];
    for crd in &mut crds {
        let kind = crd.spec.names.kind.clone();
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                bound_embedded_types(&kind, schema);
                attach_rules(&kind, schema);
            }
        }
    }
    crds
}

/// Most `matchLabels` entries, and most `matchExpressions`, of a role's selector.
pub const MAX_SELECTOR_TERMS: i64 = 16;
/// Most values of one `matchExpressions` entry.
pub const MAX_SELECTOR_VALUES: i64 = 64;
/// Longest label key: a 253-character prefix, `/`, a 63-character name.
const LABEL_KEY_MAX_LENGTH: i64 = 253 + 1 + 63;
/// Longest label value.
const LABEL_VALUE_MAX_LENGTH: i64 = 63;

/// Give the Kubernetes types embedded in a spec (a role's `LabelSelector`) the bounds the
/// apiserver needs to estimate the cost of CEL rules: without `maxItems`/`maxLength`/
/// `maxProperties` it assumes a list or string as large as a request, and refuses a CRD
/// whose rules could then exceed its budget.
fn bound_embedded_types(kind: &str, schema: &mut JSONSchemaProps) {
    if kind != Kind::PodRequest.as_str() {
        return;
    }
    let selector = node_mut(schema, "spec.roles[].selector").expect("roles have a selector");
    if let Some(labels) = node_mut(selector, "matchLabels") {
        labels.max_properties = Some(MAX_SELECTOR_TERMS);
        if let Some(JSONSchemaPropsOrBool::Schema(value)) = labels.additional_properties.as_mut() {
            value.max_length = Some(LABEL_VALUE_MAX_LENGTH);
        }
    }
    if let Some(expressions) = node_mut(selector, "matchExpressions") {
        expressions.max_items = Some(MAX_SELECTOR_TERMS);
    }
    let requirement = node_mut(selector, "matchExpressions[]").expect("matchExpressions items");
    for (field, max) in [("key", LABEL_KEY_MAX_LENGTH), ("operator", 16)] {
        if let Some(node) = node_mut(requirement, field) {
            node.max_length = Some(max);
        }
    }
    if let Some(values) = node_mut(requirement, "values") {
        values.max_items = Some(MAX_SELECTOR_VALUES);
    }
    if let Some(value) = node_mut(requirement, "values[]") {
        value.max_length = Some(LABEL_VALUE_MAX_LENGTH);
    }
}

/// Attach every rule of [`RULES`] located in `kind` to its schema node, in table order.
fn attach_rules(kind: &str, schema: &mut JSONSchemaProps) {
    for rule in RULES {
        for (rule_kind, path) in rule.check.locations() {
            if rule_kind.as_str() != kind {
                continue;
            }
            let node = node_mut(schema, path)
                .unwrap_or_else(|| panic!("rule {}: no schema node {kind} {path:?}", rule.id));
            node.x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(rule.to_validation_rule());
        }
    }
}

/// The schema node at `path` below `schema`: field names joined by `.`, `name[]` for the
/// items of list `name`, `` for `schema` itself.
fn node_mut<'a>(schema: &'a mut JSONSchemaProps, path: &str) -> Option<&'a mut JSONSchemaProps> {
    let mut node = schema;
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let (name, items) = match step.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (step, false),
        };
        node = node.properties.as_mut()?.get_mut(name)?;
        if items {
            node = match node.items.as_mut()? {
                JSONSchemaPropsOrArray::Schema(item) => item.as_mut(),
                JSONSchemaPropsOrArray::Schemas(_) => return None,
            };
        }
    }
    Some(node)
}

/// A generated CRD manifest: its file name under `crds/` and its YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdFile {
    /// `<plural>.<group>.yaml`, e.g. `labhosts.labpods.dev.yaml`.
    pub file_name: String,
    /// The manifest, with a header saying it is generated.
    pub yaml: String,
}

/// Header of every generated file, so nobody edits one by hand.
const HEADER: &str = "# Generated from crates/labpods-api by `cargo xtask crds`. Do not edit.\n";

/// The YAML files for `crds/`.
pub fn crd_files() -> Result<Vec<CrdFile>, serde_json::Error> {
    crds()
        .into_iter()
        .map(|crd| {
            Ok(CrdFile {
                file_name: format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default()),
                yaml: format!("{HEADER}{}", yaml::to_yaml(&serde_json::to_value(&crd)?)),
            })
        })
        .collect()
}
