//! A small YAML writer for CRD manifests.
//!
//! serde_yaml writes YAML 1.2, where `On`, `Off`, `yes` or `y` are plain strings, but the
//! apiserver and kubectl read YAML 1.1, where they are booleans: the PowerState enum
//! `[On, Off]` came out as `[true, false]`. This writer leaves a string unquoted only when it
//! is an identifier-like word that no YAML version reads as anything but a string, and
//! double-quotes (JSON escaping, valid YAML) everything else.

use std::fmt::Write;

use serde_json::Value;

/// Render `value` as a block-style YAML document.
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    write_block(&mut out, value, 0);
    out
}

fn write_block(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (i, (key, v)) in map.iter().enumerate() {
                // The first key of a sequence item sits on the `- ` line.
                if i > 0 || !out.ends_with("- ") {
                    pad(out, indent);
                }
                let _ = write!(out, "{}:", scalar(key));
                write_value(out, v, indent + 2);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                pad(out, indent);
                out.push_str("- ");
                match item {
                    Value::Object(m) if !m.is_empty() => write_block(out, item, indent + 2),
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        write_block(out, item, indent + 2);
                    }
                    _ => {
                        out.push_str(&inline(item));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// The part after `key:`: a nested block on the next lines, or an inline scalar.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_block(out, value, indent);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_block(out, value, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => scalar(s),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        // null, booleans and numbers print the same in JSON and YAML.
        other => other.to_string(),
    }
}

/// `s` unquoted if that reads back as the same string in YAML 1.1 and 1.2, else quoted.
fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

fn is_plain_safe(s: &str) -> bool {
    const YAML11_WORDS: &[&str] = &["y", "yes", "n", "no", "on", "off", "true", "false", "null"];
    let starts_ok = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '.');
    let chars_ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    let lower = s.to_ascii_lowercase();
    starts_ok
        && chars_ok
        && !YAML11_WORDS.contains(&lower.as_str())
        && !matches!(lower.as_str(), ".inf" | ".nan")
        // `.5`, `.1e3`: floats.
        && !(s.starts_with('.') && s[1..].starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml11_booleans_and_numbers_are_quoted() {
        let v = json!({"enum": ["On", "Off", "PoweringOn", "y", "NO", "1", "1_000", ".5", ".inf", "a: b", "x #y", ""]});
        assert_eq!(
            to_yaml(&v),
            "enum:\n  - \"On\"\n  - \"Off\"\n  - PoweringOn\n  - \"y\"\n  - \"NO\"\n  - \"1\"\n  - \"1_000\"\n  - \".5\"\n  - \".inf\"\n  - \"a: b\"\n  - \"x #y\"\n  - \"\"\n"
        );
    }

    #[test]
    fn nesting_round_trips_through_a_yaml_parser() {
        let v = json!({
            "apiVersion": "v1",
            "spec": {
                "names": {"shortNames": ["lh"], "categories": []},
                "versions": [{"name": "v1alpha1", "schema": {"x": {"required": ["a", "b"], "min": 1.5, "n": null}},
                              "subresources": {"status": {}}}],
                "nested": [[1, 2], [{"k": "multi\nline \"text\""}]],
                "$ref": ".status.phase",
                "flag": true
            }
        });
        let text = to_yaml(&v);
        let back: Value = serde_yaml::from_str(&text).expect("our YAML parses");
        assert_eq!(back, v, "\n{text}");
    }
}
