//! Every setting given must exist: a key that is not a setting (a typo, a setting of another
//! version) stops the role, naming it, instead of being silently ignored.

use super::{Settings, SettingsError};
use std::collections::{BTreeMap, BTreeSet};

/// Variables named `EVCHARGE_…` that are not settings: read by the demo's children, the
/// scripts and the tests.
const NOT_SETTINGS: [&str; 6] = [
    crate::EXIT_WITH_PARENT,
    super::API_TOKEN_VARIABLE,
    "EVCHARGE_BIN",
    "EVCHARGE_RUN_DIR",
    "EVCHARGE_IMAGE",
    "EVCHARGE_TEST_KEEP",
];

pub(super) const PREFIX: &str = "EVCHARGE_";

/// Section → its keys, from the settings themselves.
fn known() -> BTreeMap<String, BTreeSet<String>> {
    let Ok(serde_json::Value::Object(sections)) = serde_json::to_value(Settings::default()) else {
        unreachable!("the settings are a table of sections");
    };
    sections
        .into_iter()
        .map(|(section, keys)| {
            let keys = keys
                .as_object()
                .map(|keys| keys.keys().cloned().collect())
                .unwrap_or_default();
            (section, keys)
        })
        .collect()
}

/// Whether `section.key` is a setting; if not, the error, saying where it was found.
fn check(section: &str, key: Option<&str>, found_in: &str) -> Result<(), SettingsError> {
    let known = known();
    let unknown = |name: String, choices: Vec<&String>| {
        let choices: Vec<&str> = choices.into_iter().map(String::as_str).collect();
        Err(SettingsError::Unknown {
            name,
            found_in: found_in.to_owned(),
            choices: choices.join(", "),
        })
    };
    let Some(keys) = known.get(section) else {
        return unknown(section.to_owned(), known.keys().collect());
    };
    match key {
        Some(key) if !keys.contains(key) => {
            unknown(format!("{section}.{key}"), keys.iter().collect())
        }
        Some(_) => Ok(()),
        None => unknown(section.to_owned(), known.keys().collect()),
    }
}

/// The `EVCHARGE_…` variables that are settings, as the configuration reads them (without
/// the prefix); fails on the first that names no setting.
pub(super) fn environment(
    vars: impl Iterator<Item = (String, String)>,
) -> Result<config::Map<String, String>, SettingsError> {
    let mut settings = config::Map::new();
    for (name, value) in vars {
        if !name.starts_with(PREFIX) || NOT_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let path = name[PREFIX.len()..].to_lowercase();
        let mut parts = path.split("__");
        let (section, key) = (parts.next().unwrap_or(""), parts.next());
        let found_in = format!("environment variable {name}");
        if parts.next().is_some() {
            return Err(SettingsError::Unknown {
                name: path.replace("__", "."),
                found_in,
                choices: "section.key, written EVCHARGE_SECTION__KEY".into(),
            });
        }
        check(section, key, &found_in)?;
        settings.insert(name, value);
    }
    Ok(settings)
}

/// Fails on the first key of `tree` (the file merged over the defaults) that is no setting.
pub(super) fn file(
    tree: &config::Map<String, config::Value>,
    path: &std::path::Path,
) -> Result<(), SettingsError> {
    let found_in = format!("configuration file {}", path.display());
    for (section, value) in tree {
        match &value.kind {
            config::ValueKind::Table(keys) => {
                for key in keys.keys() {
                    check(section, Some(key), &found_in)?;
                }
            }
            _ => check(section, None, &found_in)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn a_variable_that_names_no_setting_is_refused_by_name() {
        let err = environment(vars(&[("EVCHARGE_KAFKA__SECURITY_PROTOCOLE", "ssl")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("kafka.security_protocole"), "{text}");
        assert!(
            text.contains("EVCHARGE_KAFKA__SECURITY_PROTOCOLE"),
            "{text}"
        );
        assert!(text.contains("security_protocol"), "{text}");
        let err = environment(vars(&[("EVCHARGE_KAFKA_BOOTSTRAP", "x:1")])).unwrap_err();
        assert!(err.to_string().contains("kafka_bootstrap"), "{err}");
    }

    #[test]
    fn settings_and_our_other_variables_pass() {
        let taken = environment(vars(&[
            ("EVCHARGE_KAFKA__BOOTSTRAP", "x:1"),
            ("EVCHARGE_TLS__CERT", "/c.pem"),
            ("EVCHARGE_EXIT_WITH_PARENT", "1"),
            ("EVCHARGE_TEST_KEEP", "1"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(taken.len(), 2, "{taken:?}");
    }
}
