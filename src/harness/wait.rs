//! Waiting on a condition with a deadline, instead of sleeping for a guessed time.

use anyhow::bail;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
pub const POLL: Duration = Duration::from_millis(200);

/// Checks `check` every [`POLL`] until it gives a value, and returns it. An error from
/// `check` counts as "not yet" (a server still starting refuses connections); when `limit`
/// passes, the error says what was waited for and the last such error.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let until = Instant::now() + limit;
    let mut last_error = None;
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= until {
            match last_error {
                Some(e) => bail!("gave up waiting for {what} after {limit:?}: {e:#}"),
                None => bail!("gave up waiting for {what} after {limit:?}"),
            }
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_for`] a condition that holds or not.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    wait_for(what, limit, || Ok(ready()?.then_some(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_returned_once_the_check_gives_one() {
        let mut calls = 0;
        let value = wait_for("the third call", Duration::from_secs(10), || {
            calls += 1;
            if calls < 2 {
                bail!("refused");
            }
            Ok((calls == 3).then_some(calls))
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn a_timeout_tells_the_last_error_of_the_condition() {
        let mut calls = 0;
        let error = wait_until("the impossible", Duration::from_millis(300), || {
            calls += 1;
            bail!("refused, attempt {calls}")
        })
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("gave up waiting for the impossible after 300ms: refused, attempt"),
            "{error}"
        );
        assert!(error.ends_with(&format!("attempt {calls}")), "{error}");
        let plain = wait_until("never", Duration::ZERO, || Ok(false)).unwrap_err();
        assert_eq!(plain.to_string(), "gave up waiting for never after 0ns");
    }
}
