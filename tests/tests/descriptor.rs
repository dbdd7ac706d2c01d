//! The pod descriptor (`pdf.yaml`, `idf.yaml` of `<podrequest>-pod`) checked against OPNFV
//! pharos' schemas by python-jsonschema (tests/src/pharos.rs). The validator is first shown
//! to read the schemas: pharos' own example fails at its `{a|b}` placeholders and validates
//! once they are filled in; the labpods Redfish extension is the only deviation.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use labpods_api::LABEL_ARCH;
use labpods_api::v1alpha1::{
    AssignedHost, Inventory, LabHost, LabHostSpec, LabHostStatus, SecretReference,
};
use labpods_operator::config::DescriptorConfig;
use labpods_operator::controllers::scheduling::descriptor::{self, Booking};
use labpods_operator::controllers::snapshot::LabHosts;
use labpods_tests::pharos::{Schema, errors, validate_descriptor};

fn example() -> Result<String> {
    let path = labpods_tests::workspace_root().join("tests/data/pharos/pod1.yaml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The example with each `{a|b}` placeholder replaced by a value it offers.
fn filled_example() -> Result<String> {
    let mut text = example()?;
    for (placeholder, value) in [
        ("{production|development}", "development"),
        ("{baremetal|virtual}", "baremetal"),
        ("{x86_64|aarch64}", "x86_64"),
        ("{broadwell|haswell|etc}", "haswell"),
        ("{disk#number}", "disk1"),
        ("{M|MB|G|GB|T|TB}", "480G"),
        ("{hdd|ssd|cdrom|tape}", "ssd"),
        ("{sata|sas|ssd|nvme|scsi|iscsi}", "sata"),
        ("{0|5400|7200|10000|15000}", "0"),
        ("{ipmi|amt|libvirt}", "ipmi"),
        ("{nic#number}", "nic1"),
        ("{native|1-4095}", "native"),
        ("{1gb|10gb|25gb|40gb}", "10gb"),
        ("{dpdk|sriov}", "dpdk"),
    ] {
        ensure!(
            text.contains(placeholder),
            "the example has no {placeholder}"
        );
        text = text.replace(placeholder, value);
    }
    Ok(text)
}

#[test]
fn pharos_example_fails_at_its_placeholders_and_validates_filled_in() -> Result<()> {
    let as_is = errors(Schema::Pdf, &example()?)?;
    ensure!(
        as_is
            .iter()
            .any(|e| e.starts_with("details.type: {'production|development': None}")),
        "{as_is:#?}"
    );
    ensure!(
        as_is
            .iter()
            .any(|e| e.starts_with("jumphost.disks.0.disk_rotation:")),
        "{as_is:#?}"
    );
    let filled = filled_example()?;
    let left = errors(Schema::Pdf, &filled)?;
    ensure!(left.is_empty(), "{left:#?}");
    // The extension leaves the IPMI form as it was.
    let left = errors(Schema::PdfWithRedfish, &filled)?;
    ensure!(left.is_empty(), "{left:#?}");
    Ok(())
}

/// A booking of two hosts as the simulator's inventory describes them.
fn rendered() -> Result<BTreeMap<String, String>> {
    let labhosts: LabHosts = ["lab-01", "lab-02"]
        .iter()
        .map(|name| {
            let spec = LabHostSpec::new(
                "https://10.0.0.21",
                "small",
                SecretReference::new("labpods-system", "bmc"),
            );
            let mut h = LabHost::new(name, spec);
            h.metadata.labels = Some(BTreeMap::from([(LABEL_ARCH.into(), "x86_64".into())]));
            h.status = Some(LabHostStatus {
                inventory: Some(Inventory {
                    manufacturer: Some("labpods".into()),
                    model: Some("SimServer 1000".into()),
                    cpu_count: Some(2),
                    memory_gib: Some(64),
                    mac_addresses: vec![format!("52:54:00:00:00:{}", &name[4..])],
                    ..Inventory::default()
                }),
                ..LabHostStatus::default()
            });
            ((*name).to_owned(), h.into())
        })
        .collect();
    let hosts: Vec<AssignedHost> = [
        ("jumphost", "lab-01", "jumphost-1"),
        ("node", "lab-02", "node-1"),
    ]
    .iter()
    .map(|(role, host, hostname)| AssignedHost {
        role: (*role).into(),
        host: (*host).into(),
        hostname: Some((*hostname).into()),
        mac_addresses: labhosts[*host]
            .status
            .as_ref()
            .and_then(|s| s.inventory.as_ref())
            .map(|i| i.mac_addresses.clone())
            .unwrap_or_default(),
        addresses: vec!["10.1.0.5".into()],
        ..AssignedHost::default()
    })
    .collect();
    let lab = DescriptorConfig {
        lab: "labpods test lab".into(),
        location: "a test run".into(),
        link: "https://labpods.test/".into(),
        contact: "lab-admins@labpods.test".into(),
    };
    Ok(descriptor::files(&Booking {
        namespace: "team",
        image: "https://images.test/os.iso",
        hosts: &hosts,
        labhosts: &labhosts,
        lab: &lab,
    }))
}

#[test]
fn rendered_descriptor_validates_with_the_redfish_extension_only() -> Result<()> {
    let files = rendered()?;
    let (pdf, idf) = (&files[descriptor::PDF], &files[descriptor::IDF]);
    validate_descriptor(pdf, idf)?;
    // Against the schema as pharos ships it, only remote_management is refused.
    let plain = errors(Schema::Pdf, pdf)?;
    ensure!(
        !plain.is_empty(),
        "the unpatched schema has no Redfish form"
    );
    ensure!(
        plain.iter().all(|e| e.contains("remote_management")),
        "{plain:#?}"
    );
    Ok(())
}

#[test]
fn redfish_extension_refuses_a_password() -> Result<()> {
    let files = rendered()?;
    let mut pdf: serde_yaml::Value = serde_yaml::from_str(&files[descriptor::PDF])?;
    pdf["jumphost"]["remote_management"]["pass"] = "hunter2".into();
    let found = errors(Schema::PdfWithRedfish, &serde_yaml::to_string(&pdf)?)?;
    ensure!(
        found
            .iter()
            .any(|e| e.starts_with("jumphost.remote_management:")),
        "{found:#?}"
    );
    Ok(())
}
