//! Helpers for integration tests that need a Docker engine, in this crate and others.
//!
//! The rule they implement: without an engine a test prints why and passes, unless the
//! environment variable `CI` is set, where a missing engine is a failure.

use std::sync::atomic::{AtomicU32, Ordering};

use bollard::Docker;

use crate::engine::ConnectError;

/// The label every test container carries, so a crashed test run can be cleaned up with
/// `remove_labelled(&docker, TEST_LABEL)`.
pub const TEST_LABEL: (&str, &str) = ("sebs-local.test", "1");

/// A connected engine, or `None` (after printing why) when there is none and `CI` is unset.
///
/// # Panics
///
/// When no engine answers and `CI` is set: in CI a missing engine fails the test.
pub async fn docker_for_tests() -> Option<Docker> {
    verdict(
        crate::engine::connect().await,
        std::env::var_os("CI").is_some(),
    )
}

fn verdict(connected: Result<Docker, ConnectError>, ci: bool) -> Option<Docker> {
    match connected {
        Ok(docker) => Some(docker),
        Err(e) if ci => {
            panic!("CI is set, so Docker tests must run, but no engine answers: failed to {e}")
        }
        Err(e) => {
            eprintln!(
                "skipping: no Docker engine (set CI=1 to make this a failure): failed to {e}"
            );
            None
        }
    }
}

/// A container name no other test, run or process on this machine uses at the same time.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_engine_tests_skip_except_in_ci() {
        let no_engine = || {
            Err(ConnectError::UnsupportedHost {
                host: "ssh://nowhere".to_string(),
            })
        };
        assert!(verdict(no_engine(), false).is_none());
        let panic = std::panic::catch_unwind(|| verdict(no_engine(), true)).unwrap_err();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("CI is set") && message.contains("ssh://nowhere"),
            "{message}"
        );
    }

    #[test]
    fn unique_names_differ_and_keep_the_prefix() {
        let a = unique_name("sebs-test");
        let b = unique_name("sebs-test");
        assert_ne!(a, b);
        assert!(a.starts_with("sebs-test-"), "{a}");
        // Docker accepts [a-zA-Z0-9][a-zA-Z0-9_.-]+ as names.
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            "{a}"
        );
    }
}
