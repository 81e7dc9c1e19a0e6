//! Invokes functions through HTTP triggers and records what SeBS records.
//!
//! - [`Trigger`]: one function endpoint; [`Trigger::invoke`] POSTs a JSON input over a
//!   kept-alive connection and times connection set-up, first byte and whole answer.
//! - [`ExecutionResult`]: SeBS's record of one invocation (client, benchmark and
//!   initialisation times, cold start, memory), serialised exactly as SeBS writes it.
//! - [`InvokeError`]: why an invocation produced no result; failures of the function itself
//!   ([`InvokeError::Function`]) keep the agent's error answer and the client-side times.
//! - [`invocation_log`]: the agent's record of when each call's handler ran; [`memory_series`]:
//!   what the agent sampled of its own memory.

mod client;
mod http;
mod log;
mod result;

pub use log::{invocation_log, memory_series, LogError};

pub use http::{read_answer, InvokeError, RequestTimes, Trigger, TriggerConfig, UrlError};
pub use result::{
    python_datetime, ExecutionBilling, ExecutionResult, ExecutionStats, ExecutionTimes,
    ProviderTimes,
};
