//! Names and labels for containers made by tests, in this crate and others.
//!
//! Whether a test can run here at all (an engine, ...) is decided by the one gate of the
//! integration test binaries, `sebs-testkit`.

use std::sync::atomic::{AtomicU32, Ordering};

/// The label every test container carries, so a crashed test run can be cleaned up with
/// `remove_labelled(&docker, TEST_LABEL)`.
pub const TEST_LABEL: (&str, &str) = ("sebs-local.test", "1");

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
