//! Fields of test objects: changing one in a JSON manifest, and telling whether a refusal or
//! a status message names it, in the spellings the apiserver, strict field validation and
//! server-side apply use.

use serde_json::Value;

/// `base` with the value at JSON `pointer` replaced (`Some`) or removed (`None`).
pub fn with(mut base: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(Value::Object(parent)) = base.pointer_mut(parent) {
        match value {
            Some(value) => parent.insert(key.to_string(), value),
            None => parent.remove(key),
        };
    } else if let Some(Value::Array(parent)) = base.pointer_mut(parent)
        && let Ok(index) = key.parse::<usize>()
        && let Some(value) = value
    {
        parent[index] = value;
    }
    base
}

/// Whether `message` names `field`: as a path (`spec.roles[0].count`, the apiserver), as a
/// quoted name inside its parent (`unknown field "spec.hostCount"`), or as server-side
/// apply's typed patch spells a path into a map list (`.spec.roles[name="jumphost"].count`).
pub fn names_field(message: &str, field: &str) -> bool {
    if message.contains(field) {
        return true;
    }
    let (parent, name) = field.rsplit_once('.').unwrap_or(("", field));
    if message.contains(&format!("\"{name}\"")) && message.contains(parent) {
        return true;
    }
    message.contains("typed patch") && without_indexes(message).contains(&without_indexes(field))
}

/// `text` without its `[...]` list indexes and keys.
fn without_indexes(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_field_accepts_both_spellings() {
        assert!(names_field(
            "spec.roles[0].count: Invalid value: 0",
            "spec.roles[0].count"
        ));
        assert!(names_field(
            r#"strict decoding error: unknown field "spec.hostCount""#,
            "spec.hostCount"
        ));
        assert!(names_field(
            r#"failed to create typed patch object (ns/x; ...): .spec.roles[name="jumphost"].count: expected numeric"#,
            "spec.roles[0].count"
        ));
        assert!(!names_field(
            "spec.roles[0].count: Invalid value: 0",
            "spec.image"
        ));
        assert!(!names_field(
            "spec.roles[1].count: Invalid value: 0",
            "spec.roles[0].count"
        ));
    }
}
