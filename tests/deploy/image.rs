//! `deploy/Dockerfile` and `deploy/Dockerfile.dockerignore`: the container image.

use crate::support::*;
use crate::{deploy, read, repo, text};
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn the_dockerfile_builds_the_one_binary_in_stages_and_runs_it_unprivileged() {
    let raw = read(&deploy("Dockerfile"));
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(
        lines[stages[0]].ends_with(" AS builder"),
        "{}",
        lines[stages[0]]
    );
    let builder = lines[stages[0]..stages[stages.len() - 1]].join("\n");
    let runtime = lines[stages[stages.len() - 1]..].join("\n");
    assert!(
        lines[stages[stages.len() - 1]].contains("-slim"),
        "a small runtime image"
    );
    assert!(runtime.contains("libssl3"), "librdkafka links OpenSSL");
    for tool in ["cmake", "build-essential", "libssl-dev"] {
        assert!(
            builder.contains(tool),
            "the builder installs {tool} for librdkafka"
        );
    }
    assert!(builder.contains("cargo build --release --locked"));
    assert!(runtime.contains("COPY --from=builder"));
    assert!(
        !runtime.contains("cargo"),
        "no toolchain in the runtime image"
    );
    let user = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("the runtime stage names its user");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/evcharge\"]"));
    assert!(runtime.contains("VOLUME"));

    // What the build copies covers what the crate reads at compile time.
    let copied: Vec<String> = builder
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let ignore = read(&deploy("Dockerfile.dockerignore"));
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".into(), "src".into()];
    if repo().join("build.rs").exists() {
        needed.push("build.rs".into());
    }
    for file in walk(&repo().join("src")) {
        let source = read(&file);
        for marker in ["include_str!(\"", "include_bytes!(\""] {
            for piece in source.split(marker).skip(1) {
                let relative = piece.split('"').next().unwrap();
                let target = file
                    .parent()
                    .unwrap()
                    .join(relative)
                    .canonicalize()
                    .unwrap();
                let top = target
                    .strip_prefix(repo().canonicalize().unwrap())
                    .unwrap()
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy()
                    .into_owned();
                needed.push(top);
            }
        }
    }
    for path in needed {
        assert!(
            copied.contains(&path),
            "the Dockerfile does not copy {path}: {copied:?}"
        );
        assert!(
            ignore
                .lines()
                .any(|l| l.trim_end_matches('/') == format!("!{path}")),
            "Dockerfile.dockerignore keeps {path} out of the context"
        );
    }

    // The runtime stage has every shared library the binary links.
    let ldd = Command::new("ldd").arg(evcharge()).output();
    if let Ok(ldd) = ldd {
        let slim = [
            "linux-vdso",
            "libc.so",
            "libm.so",
            "libgcc_s.so",
            "libz.so",
            // libssl3: librdkafka's TLS and SASL SCRAM.
            "libssl.so",
            "libcrypto.so",
            "ld-linux",
            "libpthread.so",
            "libdl.so",
            "librt.so",
        ];
        for line in text(&ldd.stdout).lines() {
            let lib = line.split_whitespace().next().unwrap_or_default();
            assert!(
                slim.iter().any(|s| lib.contains(s)),
                "the binary links {lib}: add its Debian package to the runtime stage and here"
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
    files
}
