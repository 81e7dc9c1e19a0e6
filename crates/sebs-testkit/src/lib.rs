//! The one gate of every integration test binary (`crates/*/tests/it/main.rs`).
//!
//! Each test is a [`Trial`] that names what it needs from the machine ([`Need`]: a Docker
//! engine, Node.js, root, IPv6, ...). Whether a need is met is decided at run time, once per
//! test binary, and only when a trial that needs it is selected to run:
//!
//! - met: the trial runs;
//! - not met: the trial is reported by the run's own summary as ignored, with the need on
//!   its line, and the reason is printed once after the summary;
//! - not met while [`strict`] (`CI` or `SEBS_TESTS_REQUIRE_ALL` set to a true value, as
//!   `cargo xtask test` does): the trial fails with the reason. Nothing may be skipped there.
//!
//! A test binary's `main.rs`:
//!
//! ```text
//! mod host;
//! sebs_testkit::main!(host::trials());
//! ```
//!
//! and each module lists its tests, one line each, with what they need:
//!
//! ```text
//! pub fn trials() -> Vec<sebs_testkit::Trial> {
//!     use sebs_testkit::{trial, ENGINE, NODE};
//!     vec![trial!(parses_the_config), trial!(serves_in_a_container, ENGINE, NODE)]
//! }
//! ```
//!
//! A test is a plain `fn()` or an `async fn()`; async ones run on one [`runtime`] shared by
//! the whole binary. The harness is `libtest-mimic`, which does not capture output: unless
//! `--nocapture` is given, the binary's stderr goes to a log file whose path, and each failed
//! test's stretch of it, are printed after the summary.

mod harness;
mod need;

use std::future::Future;
use std::sync::OnceLock;

pub use harness::{run, strict};
pub use need::{
    agent_binary, engine2_address, Engine2Alias, Need, AGENT, DOCKER_CLI, ENGINE, ENGINE2, FLOCK,
    IPV6, NODE, PYTHON3, ROOT,
};

/// One test: its name, what it needs and its body.
pub struct Trial {
    name: String,
    needs: Vec<&'static Need>,
    body: Box<dyn FnOnce() + Send>,
}

impl Trial {
    /// A trial running `body`, a `fn()` or an `async fn()` (see [`trial!`]).
    pub fn new<Kind>(name: impl Into<String>, body: impl Body<Kind>) -> Trial {
        Trial {
            name: name.into(),
            needs: Vec::new(),
            body: body.boxed(),
        }
    }

    /// This trial runs only where `need` is met.
    pub fn need(mut self, need: &'static Need) -> Trial {
        self.needs.push(need);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A test body: a closure or function returning `()` ([`Blocking`]) or a future of `()`
/// ([`Async`], run to completion on the shared [`runtime`]).
pub trait Body<Kind>: Send + 'static {
    fn boxed(self) -> Box<dyn FnOnce() + Send>;
}

/// The kind of a body that returns `()`.
pub enum Blocking {}
/// The kind of a body that returns a future.
pub enum Async {}

impl<F> Body<Blocking> for F
where
    F: FnOnce() + Send + 'static,
{
    fn boxed(self) -> Box<dyn FnOnce() + Send> {
        Box::new(self)
    }
}

impl<F, Fut> Body<Async> for F
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    fn boxed(self) -> Box<dyn FnOnce() + Send> {
        Box::new(move || runtime().block_on(self()))
    }
}

/// The async runtime every async trial of this binary runs on.
///
/// Multi-threaded, with more workers than cores, so that a test that blocks a worker for a
/// moment (a file written, a process waited for) does not stall the others' tasks.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("testkit-runtime")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("failed to start the tests' async runtime: {e}"))
    })
}

/// `trial!(test, NEED, ...)`: the trial of function `test` in this module, named as libtest
/// would name it (`module::test`), which runs only where every listed [`Need`] is met.
#[macro_export]
macro_rules! trial {
    ($test:ident $(, $need:expr)* $(,)?) => {
        $crate::Trial::new($crate::trial_name(module_path!(), stringify!($test)), $test)
            $(.need(&$need))*
    };
}

/// `main!(module::trials(), ...)`: the test binary's `main`, running every listed trial.
#[macro_export]
macro_rules! main {
    ($($trials:expr),* $(,)?) => {
        fn main() -> std::process::ExitCode {
            let mut trials: Vec<$crate::Trial> = Vec::new();
            $(trials.extend($trials);)*
            $crate::run(
                concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_CRATE_NAME")),
                env!("CARGO_TARGET_TMPDIR").as_ref(),
                trials,
            )
        }
    };
}

/// `it::host` and `cold_then_warm` → `host::cold_then_warm`: the binary's own crate name
/// is left out, as libtest leaves it out.
#[doc(hidden)]
pub fn trial_name(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{test}"),
        None => test.to_string(),
    }
}

/// A Docker client for a trial that needs [`ENGINE`].
///
/// # Panics
///
/// When no engine answers: the trial's need said there was one.
pub async fn docker() -> sebs_container::Docker {
    sebs_container::connect()
        .await
        .unwrap_or_else(|e| panic!("failed to {}", sebs_wire::ErrorChain(&e)))
}

/// A Docker client of the second engine, for a trial that needs [`ENGINE2`].
///
/// # Panics
///
/// When it does not answer: the trial's need said it did.
pub async fn docker2() -> sebs_container::Docker {
    let address = engine2_address().unwrap_or_else(|e| panic!("{e}"));
    sebs_container::connect_to(&address)
        .await
        .unwrap_or_else(|e| panic!("failed to {}", sebs_wire::ErrorChain(&e)))
}

/// The Python 3.11 image functions run in (`python:3.11-slim`, else our offline base,
/// built once when neither is present), resolved once per test binary.
///
/// # Panics
///
/// When no such image can be had.
pub async fn python_image(docker: &sebs_container::Docker) -> String {
    static IMAGE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    IMAGE
        .get_or_init(|| async {
            let choice =
                sebs_container::ImageChoice::for_language(sebs_wire::Language::Python, "3.11");
            sebs_container::ensure_image(docker, &choice, &sebs_container::BaseImageBuilder::new())
                .await
                .unwrap_or_else(|e| panic!("failed to {}", sebs_wire::ErrorChain(&e)))
                .tag
        })
        .await
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_are_named_as_libtest_names_them() {
        assert_eq!(trial_name("it::host", "a"), "host::a");
        assert_eq!(trial_name("it::a::b", "c"), "a::b::c");
        assert_eq!(trial_name("it", "top"), "top");
    }
}
