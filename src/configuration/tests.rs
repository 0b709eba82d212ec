use super::*;
use std::io::Write;

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    writeln!(
        file,
        "[central]\nlisten = \"1.1.1.1:1\"\nhttp = \"1.1.1.1:2\"\nsilence_window = \"5s\"\n[engine]\npower_kw = 11.5"
    )
    .unwrap();
    // SAFETY of the test: this variable name is used by this test alone.
    std::env::set_var("EVCHARGE_CENTRAL__HTTP", "2.2.2.2:2");
    let settings = load(
        Some(file.path()),
        &[("central.listen", "3.3.3.3:3".to_string())],
    )
    .unwrap();
    std::env::remove_var("EVCHARGE_CENTRAL__HTTP");
    assert_eq!(settings.central.listen, "3.3.3.3:3");
    assert_eq!(settings.central.http, "2.2.2.2:2");
    assert_eq!(settings.central.silence_window, Duration::from_secs(5));
    assert_eq!(settings.engine.power_kw, 11.5);
    assert_eq!(settings.kafka.partitions, 6);
}

#[test]
fn a_bad_value_is_refused_with_its_key() {
    let err = load(None, &[("engine.power_kw", "-1".to_string())]).unwrap_err();
    assert!(err.to_string().contains("engine.power_kw"), "{err}");
    let err = load(None, &[("cp.id", "PX#D28".to_string())]).unwrap_err();
    assert!(err.to_string().contains("cp.id"), "{err}");
    let err = load(None, &[("central.silence_window", "soon".to_string())]).unwrap_err();
    assert!(err.to_string().contains("silence_window"), "{err}");
    let err = load(None, &[("control.token", "short".to_string())]).unwrap_err();
    assert!(err.to_string().contains("control.token"), "{err}");
}

#[test]
fn the_group_session_is_the_brokers_shortest_unless_set() {
    let auto = load(None, &[]).unwrap().central.session_timeout;
    assert_eq!(auto, SessionTimeout::Auto);
    // Stock Kafka's group.min.session.timeout.ms, then a broker that says nothing.
    assert_eq!(
        auto.choose(Some(Duration::from_secs(6))),
        Duration::from_secs(6)
    );
    assert_eq!(auto.choose(None), SessionTimeout::FLOOR);
    assert_eq!(
        auto.choose(Some(Duration::from_millis(10))),
        SessionTimeout::FLOOR
    );
    let set = load(None, &[("central.session_timeout", "30s".to_string())]).unwrap();
    let fixed = set.central.session_timeout;
    assert_eq!(fixed, SessionTimeout::Fixed(Duration::from_secs(30)));
    assert_eq!(
        fixed.choose(Some(Duration::from_secs(6))),
        Duration::from_secs(30)
    );
    let err = load(None, &[("central.session_timeout", "soon".to_string())]).unwrap_err();
    assert!(err.to_string().contains("\"auto\""), "{err}");
    let err = load(None, &[("central.session_timeout", "500ms".to_string())]).unwrap_err();
    assert!(err.to_string().contains("1s or more"), "{err}");
}

#[test]
fn the_control_token_never_shows_in_debug_output() {
    let settings = load(
        None,
        &[("control.token", "a-long-enough-secret".to_string())],
    )
    .unwrap();
    assert_eq!(settings.control.given_token(), Some("a-long-enough-secret"));
    assert!(!format!("{settings:?}").contains("a-long-enough-secret"));
}

#[test]
fn a_key_of_the_file_that_is_no_setting_is_refused_by_name() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    writeln!(
        file,
        "[kafka]\nbootstrap = \"k:1\"\nsecurity_protocl = \"ssl\""
    )
    .unwrap();
    let err = load(Some(file.path()), &[]).unwrap_err().to_string();
    assert!(err.contains("kafka.security_protocl"), "{err}");
    assert!(
        err.contains("security_protocol"),
        "the known keys are listed: {err}"
    );
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    writeln!(file, "[kafak]\nbootstrap = \"k:1\"").unwrap();
    let err = load(Some(file.path()), &[]).unwrap_err().to_string();
    assert!(err.contains("unknown setting kafak"), "{err}");
}

#[test]
fn sasl_needs_its_credentials_and_reads_the_password_file() {
    let sasl = |extra: &[(&'static str, &str)]| {
        let mut o = vec![
            ("kafka.security_protocol", "sasl_ssl".to_string()),
            ("kafka.sasl_mechanism", "SCRAM-SHA-512".to_string()),
            ("kafka.sasl_username", "evcharge".to_string()),
        ];
        o.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        load(None, &o)
    };
    let err = sasl(&[]).unwrap_err().to_string();
    assert!(err.contains("kafka.sasl_password"), "{err}");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "s3cret").unwrap();
    let path = file.path().display().to_string();
    let settings = sasl(&[("kafka.sasl_password_file", &path)]).unwrap();
    assert_eq!(
        settings.kafka.sasl_password.as_ref().unwrap().expose(),
        "s3cret"
    );
    assert!(
        !format!("{settings:?}").contains("s3cret"),
        "a secret is never shown"
    );
    let err = load(None, &[("kafka.sasl_username", "evcharge".to_string())]).unwrap_err();
    assert!(err.to_string().contains("kafka.security_protocol"), "{err}");
    let err = load(None, &[("tls.cert", "/c.pem".to_string())]).unwrap_err();
    assert!(err.to_string().contains("tls.key"), "{err}");
}
