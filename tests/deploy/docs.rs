//! `docs/DEPLOY.md` and `deploy/README.md`: the guide's configuration table, sections and
//! commands against the real settings and binary; the README against the files of `deploy/`.

use crate::{
    check_addresses, check_compose_runs, check_invocation, check_variables, deploy, read, repo,
    secret_setting_of, settings_keys, variable_of, SUBCOMMANDS,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The rows of the configuration table: key → (variable, default cell).
fn configuration_table(doc: &str) -> BTreeMap<String, (String, String)> {
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| key | variable | default |") {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells[0].starts_with("---") {
                continue;
            }
            let key = cells[0].trim_matches('`').to_string();
            let variable = cells[1].trim_matches('`').to_string();
            assert!(
                rows.insert(key.clone(), (variable, cells[2].to_string()))
                    .is_none(),
                "{key} twice in the table"
            );
        }
    }
    rows
}

fn shown_default(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 {
                format!("`{}`", f as i64)
            } else {
                format!("`{f}`")
            }
        }
        Value::Bool(b) => format!("`{b}`"),
        other => panic!("no table form for {other}"),
    }
}

#[test]
fn the_deploy_guide_lists_every_setting_with_its_variable_and_default() {
    let doc = read(&repo().join("docs/DEPLOY.md"));
    let table = configuration_table(&doc);
    let keys = settings_keys();
    let listed: BTreeSet<&String> = table.keys().collect();
    let real: BTreeSet<&String> = keys.keys().collect();
    assert_eq!(
        listed, real,
        "docs/DEPLOY.md's configuration table and the settings differ"
    );
    for (key, (variable, default)) in &table {
        assert_eq!(variable, &variable_of(key), "{key}");
        assert_eq!(default, &shown_default(&keys[key]), "{key}'s default");
    }
}

#[test]
fn the_deploy_guide_covers_each_way_and_its_commands_exist() {
    let doc = read(&repo().join("docs/DEPLOY.md"));
    for heading in [
        "## Registering charging points",
        "## Registering drivers",
        "## Three machines with Kafka",
        "## One machine, embedded broker",
        "## With systemd",
        "## Configuration",
        "## Firewall",
    ] {
        assert!(
            doc.contains(heading),
            "docs/DEPLOY.md has a section {heading}"
        );
    }
    // The firewall section names every port a deployment opens.
    let firewall = doc.split("## Firewall").nth(1).unwrap();
    for port in [
        "5000/tcp", "8002/tcp", "9092/tcp", "9093/tcp", "8001", "8003",
    ] {
        assert!(firewall.contains(port), "the firewall section names {port}");
    }
    check_variables(&doc, "docs/DEPLOY.md");
    check_addresses(&doc, "docs/DEPLOY.md", true);
    // Every `evcharge …` command in a code block exists, with flags it knows, and one that
    // starts a CP's part or a driver gives it its secret; so does every one a
    // `docker compose … run SERVICE …` gives, in a service that exists.
    let mut in_code = false;
    let mut checked = 0;
    let mut code = String::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        code.push_str(line);
        code.push('\n');
        let line = line.split(" #").next().unwrap();
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        for (i, word) in words.iter().enumerate() {
            if (word == "evcharge" || word.ends_with("/evcharge"))
                && words.get(i + 1).is_some_and(|w| {
                    w.len() > 2 && w.starts_with("--") || SUBCOMMANDS.contains(&w.as_str())
                })
            {
                let argv: Vec<String> = words[i + 1..]
                    .iter()
                    .take_while(|w| !matches!(w.as_str(), "|" | "&&" | ";" | ">" | "2>&1" | "&"))
                    .cloned()
                    .collect();
                check_invocation(&argv, &format!("docs/DEPLOY.md: {line}"));
                if let Some(setting) = secret_setting_of(&argv) {
                    let variable = variable_of(setting);
                    assert!(
                        argv.iter().any(|a| a == "--secret-file")
                            || line.contains(&format!("{variable}="))
                            || line.contains(&format!("{}=", variable.trim_end_matches("_FILE"))),
                        "docs/DEPLOY.md: {line} starts a CP's part or a driver without its secret"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} evcharge commands in docs/DEPLOY.md"
    );
    let shown = check_compose_runs(&code, "docs/DEPLOY.md");
    assert!(
        shown >= 5,
        "only {shown} docker compose run commands in docs/DEPLOY.md"
    );
    // Each way of deploying registers its CPs and its drivers, and hands each its secret.
    let section = |heading: &str| -> String {
        let from = doc.find(heading).unwrap();
        let rest = &doc[from + heading.len()..];
        let to = rest.find("\n## ").unwrap_or(rest.len());
        rest[..to].to_owned()
    };
    for heading in [
        "## One machine, embedded broker",
        "### With containers (compose)",
        "### With plain binaries",
        "## With systemd",
    ] {
        let text = section(heading);
        let text = text.split("\n### ").next().unwrap();
        assert!(
            text.contains("cp-register") || text.contains("start-cps"),
            "docs/DEPLOY.md: {heading} registers no CP"
        );
        assert!(
            text.contains("--secret-file") || text.contains("SECRET_FILE"),
            "docs/DEPLOY.md: {heading} gives no CP its secret"
        );
        assert!(
            text.contains("driver-register") || text.contains("start-drivers"),
            "docs/DEPLOY.md: {heading} registers no driver"
        );
        assert!(
            text.contains("D001.secret") || text.contains("DRIVER__SECRET_FILE"),
            "docs/DEPLOY.md: {heading} gives no driver its secret"
        );
    }
    for removed in [
        "cp.location",
        "cp.price_eur_kwh",
        "CP__LOCATION",
        "CP__PRICE",
    ] {
        assert!(
            !doc.contains(removed),
            "docs/DEPLOY.md: {removed} is no setting any more"
        );
    }
    // Every file of deploy/ is described in deploy/README.md, and the README links the guide.
    let readme = read(&deploy("README.md"));
    for registration in ["cp-register", "driver-register"] {
        assert!(
            readme.contains(registration),
            "deploy/README.md: how its files get {registration}'s secrets"
        );
    }
    for file in [
        "Dockerfile",
        "compose/central.yml",
        "compose/cps.yml",
        "compose/drivers.yml",
        "compose/kafka-3.yml",
        "compose/.env.example",
        "systemd/evcharge-central.service",
        "systemd/evcharge-cp@.service",
        "systemd/evcharge-driver@.service",
        "systemd/evcharge.env",
        "scripts/evcharge-local.sh",
        "scripts/demo.sh",
    ] {
        assert!(deploy(file).exists(), "deploy/{file}");
        assert!(readme.contains(file), "deploy/README.md describes {file}");
    }
    assert!(read(&repo().join("README.md")).contains("docs/DEPLOY.md"));
}
