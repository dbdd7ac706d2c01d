//! Properties of the generated CRDs that the apiserver and `kubectl explain` rely on.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use labpods_api::crds;

fn crd(plural: &str) -> CustomResourceDefinition {
    crds()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD {plural}"))
}

fn root_schema(crd: &CustomResourceDefinition) -> JSONSchemaProps {
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.clone())
        .expect("every version has a schema")
}

fn prop<'a>(schema: &'a JSONSchemaProps, path: &str) -> &'a JSONSchemaProps {
    path.split('.').fold(schema, |s, key| {
        if key == "[]" {
            match &s.items {
                Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(i)) => i.as_ref(),
                other => panic!("{path}: no items schema: {other:?}"),
            }
        } else {
            s.properties
                .as_ref()
                .and_then(|p| p.get(key))
                .unwrap_or_else(|| panic!("{path}: no property {key}"))
        }
    })
}

/// Walk every property below `schema`, calling `f(path, schema)`.
fn walk(path: &str, schema: &JSONSchemaProps, f: &mut dyn FnMut(&str, &JSONSchemaProps)) {
    f(path, schema);
    for (k, v) in schema.properties.iter().flatten() {
        walk(&format!("{path}.{k}"), v, f);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(i)) = &schema.items {
        walk(&format!("{path}[]"), i, f);
    }
}

#[test]
fn every_field_is_documented_and_structural() {
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut missing = Vec::new();
        walk(&name, &root_schema(&crd), &mut |path, s| {
            if s.description.as_deref().is_none_or(str::is_empty) && !path.ends_with("[]") {
                missing.push(format!("{path}: no description"));
            }
            // Structural schemas: every node has a type, no $ref, no anyOf/oneOf left over.
            if s.type_.is_none()
                && s.x_kubernetes_int_or_string.is_none()
                && s.x_kubernetes_preserve_unknown_fields.is_none()
            {
                missing.push(format!("{path}: no type"));
            }
            if s.ref_path.is_some()
                || s.any_of.is_some()
                || s.one_of.is_some()
                || s.all_of.is_some()
            {
                missing.push(format!("{path}: not structural ($ref/anyOf/oneOf/allOf)"));
            }
        });
        assert!(
            missing.is_empty(),
            "add doc comments / fix schema:\n{}",
            missing.join("\n")
        );
    }
}

#[test]
fn names_scopes_and_subresources() {
    let expect = [
        ("labhosts", "Cluster", vec!["lh"]),
        ("podrequests", "Namespaced", vec!["podreq", "preq"]),
        ("leases", "Namespaced", vec!["lablease", "llease"]),
    ];
    for (plural, scope, short) in expect {
        let c = crd(plural);
        assert_eq!(c.spec.group, "labpods.dev");
        assert_eq!(c.spec.scope, scope, "{plural}");
        assert_eq!(
            c.spec.names.short_names.as_deref(),
            Some(&short.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
            "{plural}"
        );
        assert_eq!(
            c.spec.names.categories.as_deref(),
            Some(&["lab".to_string()][..]),
            "{plural}"
        );
        let v = &c.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{plural}: status subresource"
        );
    }
}

#[test]
fn printer_columns() {
    let cols = |plural: &str| -> Vec<String> {
        crd(plural).spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(
        cols("labhosts"),
        ["State", "Power", "Profile", "Claimed-By", "Age"]
    );
    assert_eq!(
        cols("podrequests"),
        ["Phase", "Hosts", "Start", "End", "Age"]
    );
    assert_eq!(cols("leases"), ["Phase", "Hosts", "Start", "End"]);
}

#[test]
fn schema_constraints_reach_the_apiserver() {
    let pr = root_schema(&crd("podrequests"));
    let roles = prop(&pr, "spec.roles");
    assert_eq!(roles.min_items, Some(1));
    assert_eq!(roles.x_kubernetes_list_type.as_deref(), Some("map"));
    assert_eq!(
        roles.x_kubernetes_list_map_keys.as_deref(),
        Some(&["name".to_string()][..])
    );
    let count = prop(&pr, "spec.roles.[].count");
    assert_eq!((count.minimum, count.maximum), (Some(1.0), Some(64.0)));
    assert_eq!(
        prop(&pr, "spec.image.checksum").pattern.as_deref(),
        Some("^(sha256|sha512):[0-9a-f]+$")
    );
    assert_eq!(prop(&pr, "spec.start").format.as_deref(), Some("date-time"));
    assert!(prop(&pr, "spec.duration").pattern.is_some());
    let conds = prop(&pr, "status.conditions");
    assert_eq!(
        conds.x_kubernetes_list_map_keys.as_deref(),
        Some(&["type".to_string()][..])
    );

    let lh = root_schema(&crd("labhosts"));
    let boot = prop(&lh, "spec.bootMode");
    assert_eq!(
        boot.default.as_ref().map(|d| d.0.clone()),
        Some(serde_json::json!("UEFI"))
    );
    assert_eq!(boot.enum_.as_ref().map(Vec::len), Some(2));
    assert_eq!(
        prop(&lh, "spec.maintenance")
            .default
            .as_ref()
            .map(|d| d.0.clone()),
        Some(serde_json::json!(false))
    );
    assert_eq!(
        prop(&lh, "spec.bmc.tls.insecureSkipVerify")
            .default
            .as_ref()
            .map(|d| d.0.clone()),
        Some(serde_json::json!(false))
    );
    let steps: Vec<_> = prop(&lh, "status.provisioning.step")
        .enum_
        .iter()
        .flatten()
        .map(|v| v.0.clone())
        .collect();
    assert!(
        steps.contains(&serde_json::json!("WaitPoweredOff"))
            && steps.contains(&serde_json::json!("WaitWiped")),
        "{steps:?}"
    );
    assert_eq!(
        prop(&lh, "spec.hardware.memoryGiB").type_.as_deref(),
        Some("integer")
    );

    let lease = root_schema(&crd("leases"));
    assert_eq!(
        prop(&lease, "spec.hosts")
            .x_kubernetes_list_map_keys
            .as_deref(),
        Some(&["host".to_string()][..])
    );
}

#[test]
fn yaml_files_read_back_as_the_crds_and_carry_no_nullable() {
    for (file, crd) in labpods_api::crd_files()
        .expect("CRDs render")
        .iter()
        .zip(crds())
    {
        let back: serde_json::Value =
            serde_yaml::from_str(&file.yaml).expect("generated YAML parses");
        assert_eq!(
            back,
            serde_json::to_value(&crd).expect("CRD serializes"),
            "{}",
            file.file_name
        );
        assert!(
            !file.yaml.contains("nullable"),
            "{}: nullable fields hide their type from kubectl explain",
            file.file_name
        );
    }
}
