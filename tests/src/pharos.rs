//! Validation of pod descriptors against OPNFV pharos' PDF and IDF schemas
//! (tests/data/pharos/, with their provenance) by python-jsonschema from the tests' venv:
//! a validator nobody here wrote, reading the schemas as pharos does.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

/// The schema a document is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `pod1.schema.yaml` as pharos ships it.
    Pdf,
    /// `pod1.schema.yaml` with [`REDFISH_EXTENSION`] applied: what labpods emits.
    PdfWithRedfish,
    /// `idf-pod1.schema.yaml` as pharos ships it.
    Idf,
}

/// The labpods extension of the PDF's `remote_management` (docs/access.md "Pod
/// descriptor"), as a patch to the schema: a third form beside IPMI/AMT and libvirt,
/// `type: redfish` with the BMC's address and `power_control: operator`, which may carry no
/// `user` or `pass`. The two original forms keep requiring `user` and `pass` (moved from
/// the block into each form); nothing else changes.
pub const REDFISH_EXTENSION: &str = r#"
def labpods_redfish(schema):
    block = schema["definitions"]["remote_management"]["v1.0"]
    credentials = block.pop("required")
    assert credentials == ["user", "pass"], credentials
    for form in block["oneOf"]:
        form["required"] = form["required"] + credentials
    block["properties"]["power_control"] = {"type": "string"}
    block["oneOf"].append({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["redfish"]},
            "address": {"type": "string", "pattern": "^https?://"},
            "power_control": {"type": "string", "enum": ["operator"]},
        },
        "required": ["type", "address", "power_control"],
        "not": {"anyOf": [{"required": ["user"]}, {"required": ["pass"]}]},
    })
"#;

/// Reads the schema and the document (stdin) with PyYAML and prints each error as
/// `path: message`. Like pharos' `validate_schema.py` it adds `version_<version>: true`
/// (the schemas apply their versioned blocks only then), and validates with draft 7: the
/// schemas' `dependencies` is a draft-7 keyword, which a 2020-12 validator would ignore.
const VALIDATE: &str = r#"
import sys, yaml, jsonschema
schema = yaml.safe_load(open(sys.argv[1]))
if sys.argv[2] == "redfish":
    labpods_redfish(schema)
doc = yaml.safe_load(sys.stdin)
block = doc["idf"] if "idf" in doc else doc
block["version_{}".format(block["version"])] = True
errors = jsonschema.Draft7Validator(schema).iter_errors(doc)
for e in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
    print("{}: {}".format(".".join(str(p) for p in e.absolute_path), e.message))
"#;

/// Every error of `document` (YAML) against `schema`; empty when it validates.
pub fn errors(schema: Schema, document: &str) -> Result<Vec<String>> {
    let file = match schema {
        Schema::Pdf | Schema::PdfWithRedfish => "pod1.schema.yaml",
        Schema::Idf => "idf-pod1.schema.yaml",
    };
    let path = crate::workspace_root().join("tests/data/pharos").join(file);
    let python = crate::sushy::venv()?.join("bin/python");
    let mut child = Command::new(python)
        .args(["-c", &format!("{REDFISH_EXTENSION}\n{VALIDATE}")])
        .arg(path)
        .arg(if schema == Schema::PdfWithRedfish {
            "redfish"
        } else {
            "as-is"
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running python-jsonschema (bash tests/support/python-venv.sh installs it)")?;
    child
        .stdin
        .take()
        .context("python's stdin")?
        .write_all(document.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "python-jsonschema failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Checks `pdf` and `idf` (YAML) as labpods emits them: the PDF against the schema with the
/// Redfish extension, the IDF against its schema as is.
pub fn validate_descriptor(pdf: &str, idf: &str) -> Result<()> {
    let pdf_errors = errors(Schema::PdfWithRedfish, pdf)?;
    ensure!(
        pdf_errors.is_empty(),
        "the PDF does not validate: {pdf_errors:#?}\n{pdf}"
    );
    let idf_errors = errors(Schema::Idf, idf)?;
    ensure!(
        idf_errors.is_empty(),
        "the IDF does not validate: {idf_errors:#?}\n{idf}"
    );
    Ok(())
}
