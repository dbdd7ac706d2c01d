//! The chart's alert rules (charts/labpods/files/alerts.yaml), checked and unit-tested with
//! Debian's promtool against the synthetic series of files/alerts.test.yaml: each alert
//! fires when it should, not before its `for`, and not on the series it must ignore.

use anyhow::{Result, ensure};
use labpods_tests::helm::{chart_dir, promtool};

/// `promtool ARGS` in charts/labpods/files: its stdout if it succeeded saying `expect`.
fn promtool_says(args: &[&str], expect: &str) -> Result<()> {
    let out = std::process::Command::new(promtool()?)
        .args(args)
        .current_dir(chart_dir().join("files"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains(expect),
        "promtool {}:\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() -> Result<()> {
    promtool_says(&["check", "rules", "alerts.yaml"], "SUCCESS: 8 rules found")?;
    promtool_says(&["test", "rules", "alerts.test.yaml"], "SUCCESS")
}

/// Every alert has a runbook section in the README, where its runbook_url points.
#[test]
fn every_alert_links_a_runbook_in_the_readme() -> Result<()> {
    let rules: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(
        chart_dir().join("files/alerts.yaml"),
    )?)?;
    let readme = std::fs::read_to_string(labpods_tests::workspace_root().join("README.md"))?;
    let mut seen = 0;
    for rule in rules["groups"][0]["rules"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let alert = rule["alert"].as_str().unwrap_or_default();
        let anchor = format!("runbook-{}", alert.to_lowercase());
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str(),
            Some(format!("https://github.com/labpods/labpods#{anchor}").as_str())
        );
        assert!(
            readme.contains(&format!("#### Runbook: {alert}")),
            "README.md has no '#### Runbook: {alert}' section"
        );
        seen += 1;
    }
    assert_eq!(seen, 8);
    Ok(())
}
