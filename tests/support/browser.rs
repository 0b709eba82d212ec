//! A real headless Chromium, driven over WebDriver (chromedriver + fantoccini), for the
//! end-to-end tests of the pages. Every wait is on a condition; screenshots are saved under
//! `target/screenshots/<test>/`.

#![allow(dead_code)]

use crate::support::{wait_for, DEADLINE};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One headless Chromium with its own profile, and the chromedriver that drives it.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts a browser whose screenshots go to `target/screenshots/<test>/`.
    pub fn start(test: &str) -> Browser {
        for needed in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(needed).exists(),
                "{needed} is missing: run the README's test command (scripts/test.sh), which installs chromium and chromium-driver"
            );
        }
        let profile = tempfile::tempdir().unwrap();
        // Port 0: chromedriver takes a free port and says which on its standard output.
        let said = profile.path().join("chromedriver.out");
        let driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(std::fs::File::create(&said).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let port: u16 = wait_for("chromedriver to say its port", DEADLINE, || {
            let text = std::fs::read_to_string(&said).ok()?;
            let (_, rest) = text.split_once("started successfully on port ")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = wait_for("chromedriver to start a browser", DEADLINE, || {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(capabilities.clone());
            runtime.block_on(builder.connect(&url)).ok()
        });
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/screenshots")
            .join(test);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            runtime,
            client: Some(client),
            driver,
            shots,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser is open")
    }

    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn js(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The text of the first element matching `css`, if there is one.
    pub fn text(&self, css: &str) -> Option<String> {
        self.runtime.block_on(async {
            let element = self.client().find(Locator::Css(css)).await.ok()?;
            element.text().await.ok()
        })
    }

    /// An attribute of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.runtime.block_on(async {
            let element = self.client().find(Locator::Css(css)).await.ok()?;
            element.attr(name).await.ok().flatten()
        })
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .map(|all| all.len())
            .unwrap_or(0)
    }

    /// Waits until an element matching `css` is displayed, then clicks it.
    pub fn click(&self, css: &str) {
        wait_for(&format!("{css} to be clickable"), DEADLINE, || {
            self.runtime.block_on(async {
                let element = self.client().find(Locator::Css(css)).await.ok()?;
                if !element.is_displayed().await.ok()? {
                    return None;
                }
                element.click().await.ok()
            })
        });
    }

    /// Waits for the input matching `css`, clears it and types `text`.
    pub fn fill(&self, css: &str, text: &str) {
        wait_for(&format!("{css} to take input"), DEADLINE, || {
            self.runtime.block_on(async {
                let element = self.client().find(Locator::Css(css)).await.ok()?;
                element.clear().await.ok()?;
                element.send_keys(text).await.ok()
            })
        });
    }

    /// Waits until the text of `css` satisfies `check`; returns that text.
    pub fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_text_for(css, what, DEADLINE, check)
    }

    pub fn wait_text_for(
        &self,
        css: &str,
        what: &str,
        deadline: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        wait_for(what, deadline, || self.text(css).filter(|t| check(t)))
    }

    /// Waits until an element matching `css` exists and is displayed.
    pub fn wait_visible(&self, css: &str) {
        wait_for(&format!("{css} to show"), DEADLINE, || {
            self.runtime.block_on(async {
                let element = self.client().find(Locator::Css(css)).await.ok()?;
                element.is_displayed().await.ok().filter(|shown| *shown)
            })
        });
    }

    /// Saves a PNG of the page as `<name>.png`.
    pub fn screenshot(&self, name: &str) {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .expect("a screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    /// Closes the browser; when the test failed, saves what the page showed first.
    fn drop(&mut self) {
        if std::thread::panicking() && self.client.is_some() {
            if let Ok(png) = self.runtime.block_on(self.client().screenshot()) {
                let path = self.shots.join("failure.png");
                let _ = std::fs::write(&path, png);
                eprintln!("screenshot at the failure: {}", path.display());
            }
            if let Ok(html) = self.runtime.block_on(self.client().source()) {
                let _ = std::fs::write(self.shots.join("failure.html"), html);
            }
        }
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
