//! Properties of the generated CRDs that the apiserver and `kubectl explain` rely on.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    ValidationRule,
};
use labpods_api::crds;
use labpods_api::validation::RULES;

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
    assert_eq!(cols("leases"), ["Phase", "Since", "Hosts", "Start", "End"]);
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
    assert_eq!(prop(&pr, "spec.image.checksum").max_length, Some(135));
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
fn yaml_files_read_back_as_the_crds() {
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
    }
}

/// `Option` fields are `nullable` (schemars' rendering, kept since the 1.20 workaround that
/// stripped it is gone) and keep their type, which is what OpenAPI v3 and so
/// `kubectl explain` show.
#[test]
fn optional_fields_are_nullable_and_keep_their_type() {
    let pr = root_schema(&crd("podrequests"));
    for (path, type_) in [
        ("spec.duration", "string"),
        ("spec.start", "string"),
        ("spec.end", "string"),
        ("spec.roles.[].selector", "object"),
        ("spec.image.checksum", "string"),
        ("status.lease", "string"),
    ] {
        let s = prop(&pr, path);
        assert_eq!(s.nullable, Some(true), "{path}");
        assert_eq!(s.type_.as_deref(), Some(type_), "{path}");
    }
    // Required fields are not.
    assert_eq!(prop(&pr, "spec.roles").nullable, None);
    assert_eq!(prop(&pr, "spec.image.url").nullable, None);
}

/// The `x-kubernetes-validations` entries of `schema` and below, with their paths.
fn validations(path: &str, schema: &JSONSchemaProps, out: &mut Vec<(String, ValidationRule)>) {
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        out.push((path.to_owned(), rule.clone()));
    }
    for (k, v) in schema.properties.iter().flatten() {
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        validations(&child, v, out);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(i)) = &schema.items {
        validations(&format!("{path}[]"), i, out);
    }
}

#[test]
fn every_rule_is_attached_where_its_check_says_and_nothing_else() {
    for crd in crds() {
        let kind = crd.spec.names.kind.clone();
        let mut found = Vec::new();
        validations("", &root_schema(&crd), &mut found);
        let expected: Vec<(String, ValidationRule)> = RULES
            .iter()
            .flat_map(|rule| {
                rule.check
                    .locations()
                    .iter()
                    .filter(|(k, _)| k.as_str() == kind)
                    .map(|(_, path)| ((*path).to_owned(), rule.to_validation_rule()))
            })
            .collect();
        let sorted = |mut v: Vec<(String, ValidationRule)>| {
            v.sort_by(|a, b| (&a.0, &a.1.rule).cmp(&(&b.0, &b.1.rule)));
            v
        };
        assert_eq!(sorted(found), sorted(expected), "{kind}");
    }
    let pr = root_schema(&crd("podrequests"));
    let root = pr.x_kubernetes_validations.clone().unwrap_or_default();
    assert!(
        root.iter().all(|r| r.rule.contains("oldSelf.status")),
        "the root holds the transition rules that need the status: {root:?}"
    );
    let spec_rules = prop(&pr, "spec")
        .x_kubernetes_validations
        .clone()
        .unwrap_or_default();
    let xor = spec_rules
        .iter()
        .find(|r| r.rule == "!(has(self.duration) && has(self.end))")
        .expect("duration xor end is a CEL rule on spec");
    assert_eq!(xor.field_path.as_deref(), Some(".end"));
    assert_eq!(xor.reason.as_deref(), Some("FieldValueForbidden"));
}

/// Walk `schema`, collecting what the apiserver cannot bound when it estimates the cost of
/// a CEL rule: a string without maxLength (enums and date-times have a known size), a list
/// without maxItems, a map without maxProperties.
fn unbounded(path: &str, schema: &JSONSchemaProps, out: &mut Vec<String>) {
    match schema.type_.as_deref() {
        Some("string")
            if schema.max_length.is_none()
                && schema.enum_.is_none()
                && schema.format.as_deref() != Some("date-time") =>
        {
            out.push(format!("{path}: string without maxLength"));
        }
        Some("array") if schema.max_items.is_none() => {
            out.push(format!("{path}: list without maxItems"));
        }
        Some("object")
            if schema.additional_properties.is_some() && schema.max_properties.is_none() =>
        {
            out.push(format!("{path}: map without maxProperties"));
        }
        _ => {}
    }
    for (k, v) in schema.properties.iter().flatten() {
        unbounded(&format!("{path}.{k}"), v, out);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(i)) = &schema.items {
        unbounded(&format!("{path}[]"), i, out);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(v)) = &schema.additional_properties {
        unbounded(&format!("{path}{{}}"), v, out);
    }
}

/// Every spec field is bounded, and so is every status field a rule reads: the apiserver
/// refuses a CRD whose rules it cannot bound in cost, and the bounds keep the estimate low
/// as rules are added. (The rest of the status is the operator's own text, BMC error
/// messages included, and stays unbounded so a long one never fails a status write.)
#[test]
fn everything_a_rule_can_reach_is_bounded() {
    let mut problems = Vec::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let root = root_schema(&crd);
        unbounded(&format!("{name}.spec"), prop(&root, "spec"), &mut problems);
    }
    let pr = root_schema(&crd("podrequests"));
    for path in ["status.lease", "status.phase"] {
        unbounded(path, prop(&pr, path), &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let selector = prop(&pr, "spec.roles.[].selector");
    assert_eq!(prop(selector, "matchExpressions").max_items, Some(16));
    assert_eq!(prop(selector, "matchLabels").max_properties, Some(16));
    assert_eq!(
        prop(selector, "matchExpressions.[].values").max_items,
        Some(64)
    );
}
