//! Exit codes, documented in the README, and the error type that carries them.

use std::fmt::Display;

/// What the exit code of `sebs-local` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// At least one invocation failed (the handler raised, timed out, or its container died);
    /// the results printed say which.
    InvocationFailed = 1,
    /// The input is wrong: unknown benchmark, invalid `config.json`, broken `input.py`,
    /// unreadable or foreign state file.
    BadInput = 2,
    /// The environment is missing something: no Docker engine, no image, no agent binary.
    Environment = 3,
    /// Output validation ran and at least one output was wrong.
    ValidationFailed = 4,
    /// `stop` or `logs` found a function's container killed or removed behind our back; the
    /// rest was done (everything else stopped and cleaned up).
    FunctionLost = 5,
    /// Interrupted by Ctrl-C; containers were removed.
    Interrupted = 130,
}

/// An error on its way to becoming an exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

/// Tags an error with the exit code it should produce.
pub trait ExitContext<T> {
    fn exit(self, exit: Exit, context: impl Display + Send + Sync + 'static) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> ExitContext<T> for Result<T, E> {
    fn exit(self, exit: Exit, context: impl Display + Send + Sync + 'static) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            exit,
            error: e.into().context(context),
        })
    }
}
