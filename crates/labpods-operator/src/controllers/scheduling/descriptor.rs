//! The pod descriptor of a booking (pure): an OPNFV/Anuket Pod Descriptor File (`pdf.yaml`)
//! and Installer Descriptor File (`idf.yaml`), so an installer can deploy onto the pod
//! without a person describing it (the shape of pharos `config/pdf/`; docs/access.md "Pod
//! descriptor" says where each field comes from).
//!
//! Only what the lab knows goes in. A field the schema requires that the lab does not know
//! is written empty (`""`, or `0` for a count), never guessed; a fact with no honest value
//! the schema accepts (memory, an architecture other than `x86_64`/`aarch64`) is left out.
//! Disks are listed as `[]`: a PDF disk needs its interface and rotation speed, which the
//! lab's inventory does not record.
//!
//! `remote_management` is a labpods extension of the schema (it allows only IPMI, AMT and
//! libvirt, each with a user and password): `type: redfish`, the BMC's address and
//! `power_control: operator` (only the operator drives the BMC), and never a credential.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use kube::ResourceExt;
use labpods_api::LABEL_ARCH;
use labpods_api::v1alpha1::{Arch, AssignedHost, LabHost};
use regex::Regex;
use serde_json::{Value, json};
use url::Url;

use crate::config::DescriptorConfig;
use crate::controllers::snapshot::LabHosts;

/// Key of the PDF in the ConfigMap.
pub const PDF: &str = "pdf.yaml";
/// Key of the IDF in the ConfigMap.
pub const IDF: &str = "idf.yaml";
/// The role whose first host is the PDF's `jumphost` (else the booking's first host is).
pub const JUMPHOST_ROLE: &str = "jumphost";
/// `remote_management.power_control`: the lab's operator alone drives the BMC (boot at the
/// start, power-off and wipe at the end); a tenant gets no BMC account.
pub const POWER_CONTROL: &str = "operator";

/// The PDF schema's `details.contact` pattern.
static CONTACT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+[,; ]*)+$")
        .expect("a constant pattern")
});
/// The PDF schema's `mac_address` pattern.
static MAC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$").expect("a constant pattern")
});

/// Whether `contact` passes the PDF schema's `details.contact` (e-mail addresses).
pub fn is_contact(contact: &str) -> bool {
    CONTACT.is_match(contact)
}

/// The descriptor ConfigMap's name for request `name`.
pub fn config_map_name(name: &str) -> String {
    format!("{name}-pod")
}

/// What the descriptor is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct Booking<'a> {
    /// The request's namespace: the PDF's `pod_owner`.
    pub namespace: &'a str,
    /// `spec.image.url`: the OS every host boots.
    pub image: &'a str,
    /// Each host as the request's status shows it ([`super::hosts::assigned`]).
    pub hosts: &'a [AssignedHost],
    /// The LabHosts by name: hardware facts, inventory and BMC address.
    pub labhosts: &'a LabHosts,
    /// The lab's `descriptor` configuration: the PDF's `details`.
    pub lab: &'a DescriptorConfig,
}

/// `url` without its user and password, if it carries any.
fn without_userinfo(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            // Cannot fail for the http(s) URLs the API admits.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn arch(labhost: &LabHost) -> Option<&'static str> {
    let declared = labhost.spec.hardware.as_ref().and_then(|h| h.arch.as_ref());
    let labelled = labhost.labels().get(LABEL_ARCH).map(String::as_str);
    match (declared, labelled) {
        (Some(Arch::X86_64), _) | (None, Some("x86_64")) => Some("x86_64"),
        (Some(Arch::Aarch64), _) | (None, Some("aarch64")) => Some("aarch64"),
        _ => None,
    }
}

/// The PDF's `node` block of `labhost`.
fn node(labhost: Option<&LabHost>) -> Value {
    let inventory = labhost
        .and_then(|l| l.status.as_ref())
        .and_then(|s| s.inventory.as_ref());
    let declared = labhost.and_then(|l| l.spec.hardware.as_ref());
    let memory_gib = inventory
        .and_then(|i| i.memory_gib)
        .or_else(|| declared.and_then(|h| h.memory_gib))
        .filter(|&m| m > 0);
    let mut node = json!({
        "type": "baremetal",
        "vendor": inventory.and_then(|i| i.manufacturer.clone()).unwrap_or_default(),
        "model": inventory.and_then(|i| i.model.clone()).unwrap_or_default(),
        // Redfish ProcessorSummary.Count: the processors (sockets), as the PDF counts them.
        "cpus": inventory.and_then(|i| i.cpu_count).unwrap_or(0),
        "cpu_cflags": "",
        "cores": 0,
    });
    if let Some(arch) = labhost.and_then(arch) {
        node["arch"] = json!(arch);
    }
    if let Some(gib) = memory_gib {
        node["memory"] = json!(format!("{gib}G"));
    }
    node
}

/// One PDF node (the jumphost's shape, less `os`) for `host`.
fn pdf_node(host: &AssignedHost, labhost: Option<&LabHost>) -> Value {
    let interfaces: Vec<Value> = host
        .mac_addresses
        .iter()
        .filter(|m| MAC.is_match(m))
        .enumerate()
        .map(|(i, mac)| json!({ "name": format!("nic{}", i + 1), "mac_address": mac }))
        .collect();
    let mut remote_management = json!({
        "type": "redfish",
        "power_control": POWER_CONTROL,
    });
    if let Some(l) = labhost {
        remote_management["address"] = json!(without_userinfo(&l.spec.bmc.address));
    }
    json!({
        "name": host.hostname.clone().unwrap_or_else(|| host.host.clone()),
        "node": node(labhost),
        "disks": [],
        "remote_management": remote_management,
        "interfaces": interfaces,
    })
}

/// `pdf.yaml` and `idf.yaml` of `booking`, written in YAML's JSON subset: quoted strings
/// throughout, so a YAML 1.1 reader (PyYAML, as pharos and the installers use) cannot take
/// a MAC such as `52:54:00:00:00:01` for a base-60 number.
pub fn files(booking: &Booking<'_>) -> BTreeMap<String, String> {
    let labhost = |h: &AssignedHost| booking.labhosts.get(&h.host).map(AsRef::as_ref);
    let jumphost = booking
        .hosts
        .iter()
        .position(|h| h.role == JUMPHOST_ROLE)
        .unwrap_or(0);
    let mut jump = Value::Null;
    let mut nodes = Vec::new();
    for (i, host) in booking.hosts.iter().enumerate() {
        let node = pdf_node(host, labhost(host));
        if i == jumphost {
            jump = node;
            jump["os"] = json!(without_userinfo(booking.image));
        } else {
            nodes.push(node);
        }
    }
    let lab = booking.lab;
    let pdf = json!({
        "version": 1.0,
        "details": {
            // A booking is never a production pod.
            "type": "development",
            "pod_owner": booking.namespace,
            "contact": lab.contact,
            "lab": lab.lab,
            "location": lab.location,
            "link": lab.link,
        },
        "jumphost": jump,
        "nodes": nodes,
    });
    let by_host = |f: &dyn Fn(&AssignedHost) -> Option<Value>| -> BTreeMap<String, Value> {
        booking
            .hosts
            .iter()
            .filter_map(|h| Some((h.hostname.clone().unwrap_or_else(|| h.host.clone()), f(h)?)))
            .collect()
    };
    let oob = by_host(&|h| labhost(h).map(|l| json!(without_userinfo(&l.spec.bmc.address))));
    let public = by_host(&|h| {
        // A report comes from the tenant's OS: only IP addresses pass.
        let addresses: Vec<String> = h
            .addresses
            .iter()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .map(|a| a.to_string())
            .collect();
        (!addresses.is_empty()).then(|| json!(addresses))
    });
    let idf = json!({
        "idf": {
            "version": 0.1,
            "net_config": {
                // The BMCs, reached by the operator alone.
                "oob": { "hosts": oob },
                // What each booted host reported through phone-home: where users reach it.
                "public": { "hosts": public },
            },
        },
    });
    BTreeMap::from([
        (PDF.to_owned(), format!("{pdf:#}\n")),
        (IDF.to_owned(), format!("{idf:#}\n")),
    ])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use labpods_api::v1alpha1::{Disk, HardwareFacts, Inventory};

    use super::*;
    use crate::controllers::scheduling::hosts::{
        assigned,
        tests::{index, labhost, lease, report},
    };

    fn lab() -> DescriptorConfig {
        DescriptorConfig {
            lab: "Example Lab".into(),
            location: "Portland, Oregon, USA".into(),
            link: "https://lab.example/".into(),
            contact: "lab-admins@lab.example".into(),
        }
    }

    /// LabHost `name` of the request's Lease with a full inventory.
    fn measured(name: &str, report: Option<labpods_api::v1alpha1::BootReport>) -> LabHost {
        let mut h = labhost(name, Some(("pod", "u-pod")), report);
        h.labels_mut().insert(LABEL_ARCH.into(), "x86_64".into());
        if let Some(inventory) = h.status.as_mut().and_then(|s| s.inventory.as_mut()) {
            *inventory = Inventory {
                manufacturer: Some("Supermicro".into()),
                model: Some("SYS-1029".into()),
                cpu_count: Some(2),
                memory_gib: Some(192),
                mac_addresses: vec![
                    format!("52:54:00:00:00:{}", &name[1..]),
                    "not-a-mac".into(),
                    "52:54:00:00:01:ff".into(),
                ],
                disks: vec![Disk {
                    name: "Disk.0".into(),
                    capacity_bytes: Some(960_197_124_096),
                    media_type: Some("SSD".into()),
                }],
                ..Inventory::default()
            };
        }
        h
    }

    fn render(labhosts: Vec<LabHost>, roles: &[(&str, &str)]) -> (Value, Value) {
        let mut l = lease(&roles.iter().map(|(h, _)| *h).collect::<Vec<_>>());
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for (host, (_, role)) in l.spec.hosts.iter_mut().zip(roles) {
            let n = counts.entry(role).or_default();
            *n += 1;
            host.role = (*role).into();
            host.hostname = Some(format!("{role}-{n}"));
        }
        let labhosts = index(labhosts);
        let hosts = assigned(&l, &labhosts);
        let config = lab();
        let files = files(&Booking {
            namespace: "team",
            image: "https://images.example/ubuntu-24.04.iso",
            hosts: &hosts,
            labhosts: &labhosts,
            lab: &config,
        });
        let parse = |key: &str| serde_yaml::from_str(&files[key]).unwrap_or(Value::Null);
        (parse(PDF), parse(IDF))
    }

    #[test]
    fn each_node_shows_the_inventory_and_nothing_invented() {
        let (pdf, _) = render(
            vec![measured("h01", None), measured("h02", None)],
            &[("h01", "node"), ("h02", "node")],
        );
        let jump = &pdf["jumphost"];
        assert_eq!(jump["name"], "node-1");
        assert_eq!(
            jump["node"],
            json!({
                "type": "baremetal",
                "vendor": "Supermicro",
                "model": "SYS-1029",
                "arch": "x86_64",
                "cpus": 2,
                "cpu_cflags": "",
                "cores": 0,
                "memory": "192G",
            })
        );
        // A PDF disk needs an interface and rotation speed the inventory does not have.
        assert_eq!(jump["disks"], json!([]));
        assert_eq!(
            jump["interfaces"],
            json!([
                { "name": "nic1", "mac_address": "52:54:00:00:00:01" },
                { "name": "nic2", "mac_address": "52:54:00:00:01:ff" },
            ]),
            "only MACs the schema's pattern accepts, numbered from nic1"
        );
        assert_eq!(jump["os"], "https://images.example/ubuntu-24.04.iso");
        let nodes = pdf["nodes"].as_array().cloned().unwrap_or_default();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["name"], "node-2");
        assert_eq!(nodes[0].get("os"), None);
    }

    #[test]
    fn details_come_from_the_lab_config_and_the_requests_namespace() {
        let (pdf, _) = render(vec![measured("h01", None)], &[("h01", "node")]);
        assert_eq!(pdf["version"], json!(1.0));
        assert_eq!(
            pdf["details"],
            json!({
                "type": "development",
                "pod_owner": "team",
                "contact": "lab-admins@lab.example",
                "lab": "Example Lab",
                "location": "Portland, Oregon, USA",
                "link": "https://lab.example/",
            })
        );
    }

    #[test]
    fn a_jumphost_role_gives_the_jumphost() {
        let (pdf, _) = render(
            vec![measured("h01", None), measured("h02", None)],
            &[("h01", "node"), ("h02", "jumphost")],
        );
        assert_eq!(pdf["jumphost"]["name"], "jumphost-1");
        assert_eq!(pdf["nodes"][0]["name"], "node-1");
        assert_eq!(pdf["nodes"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn remote_management_is_the_redfish_extension_without_credentials() {
        let mut h = measured("h01", None);
        h.spec.bmc.address = "https://bmcuser:hunter2@10.0.0.21:8443".into();
        let (pdf, idf) = render(vec![h], &[("h01", "node")]);
        assert_eq!(
            pdf["jumphost"]["remote_management"],
            json!({
                "type": "redfish",
                "address": "https://10.0.0.21:8443/",
                "power_control": "operator",
            })
        );
        let all = format!("{pdf}{idf}");
        assert!(
            !all.contains("hunter2") && !all.contains("bmcuser"),
            "{all}"
        );
    }

    #[test]
    fn unknown_facts_are_empty_or_left_out() {
        let mut h = labhost("h01", Some(("pod", "u-pod")), None);
        h.labels_mut().insert(LABEL_ARCH.into(), "s390x".into());
        let (pdf, _) = render(vec![h], &[("h01", "node")]);
        assert_eq!(
            pdf["jumphost"]["node"],
            json!({
                "type": "baremetal",
                "vendor": "",
                "model": "",
                "cpus": 0,
                "cpu_cflags": "",
                "cores": 0,
            }),
            "no memory and no arch the schema allows: left out"
        );
    }

    #[test]
    fn declared_facts_fill_what_the_inventory_lacks() {
        let mut h = labhost("h01", Some(("pod", "u-pod")), None);
        h.labels_mut().insert(LABEL_ARCH.into(), "x86_64".into());
        h.spec.hardware = Some(HardwareFacts {
            cpus: Some(64),
            memory_gib: Some(256),
            arch: Some(Arch::Aarch64),
        });
        let (pdf, _) = render(vec![h], &[("h01", "node")]);
        let node = &pdf["jumphost"]["node"];
        assert_eq!(
            node["arch"], "aarch64",
            "the declared arch wins over the label"
        );
        assert_eq!(node["memory"], "256G");
        assert_eq!(node["cpus"], 0, "declared logical CPUs are not sockets");
    }

    #[test]
    fn the_idf_names_the_bmc_network_and_the_reported_addresses() {
        let (_, idf) = render(
            vec![
                measured("h01", Some(report("team/pod", "10.1.0.5"))),
                measured("h02", Some(report("team/other", "10.1.0.6"))),
            ],
            &[("h01", "node"), ("h02", "node")],
        );
        assert_eq!(
            idf,
            json!({ "idf": {
                "version": 0.1,
                "net_config": {
                    "oob": { "hosts": {
                        "node-1": "https://10.0.0.21",
                        "node-2": "https://10.0.0.21",
                    } },
                    "public": { "hosts": { "node-1": ["10.1.0.5"] } },
                },
            } })
        );
    }

    #[test]
    fn contacts_are_checked_as_the_schema_does() {
        assert!(is_contact("a@lab.example"));
        assert!(is_contact("a@lab.example, b.c+d@x-y.org"));
        assert!(!is_contact("lab admins"));
        assert!(!is_contact("a@localhost"));
    }
}
