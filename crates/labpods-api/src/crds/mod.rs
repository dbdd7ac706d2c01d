//! The CustomResourceDefinitions generated from the types, as objects and as the YAML files
//! committed under `crds/` (one source for `cargo xtask crds` and the drift test).

mod yaml;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::{LabHost, Lease, PodRequest};

/// Every CRD of the API, in a fixed order, as they should be installed. Prefer this over
/// `LabHost::crd()`: it also drops `nullable` (see `drop_nullable`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![LabHost::crd(), PodRequest::crd(), Lease::crd()];
    for version in crds.iter_mut().flat_map(|c| c.spec.versions.iter_mut()) {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            drop_nullable(schema);
        }
    }
    crds
}

/// Remove `nullable: true` (schemars' rendering of `Option`) everywhere.
///
/// The apiserver publishes nullable fields to OpenAPI v2 without a type, so `kubectl explain`
/// showed `duration <>` and kubectl's client-side validation ignored them. Without
/// `nullable`, an explicit `null` is pruned like an absent field, which is what `Option` means.
fn drop_nullable(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        drop_nullable(child);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => drop_nullable(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(drop_nullable),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        drop_nullable(extra);
    }
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
