//! SeBS's `ExecutionResult`: the record of one invocation, in SeBS's JSON shape.
//!
//! These types are the on-disk format SeBS's analysis scripts read (spec section 4), kept
//! apart from the trigger's own state on purpose. Times are microseconds unless named
//! otherwise; `http_startup` and `http_first_byte_return` are seconds, as curl reports them.

use serde::{Deserialize, Serialize};

/// One invocation, as SeBS writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    /// The container's whole answer (`begin`, `end`, `is_cold`, `result.output`, ...).
    pub output: serde_json::Value,
    pub request_id: String,
    pub times: ExecutionTimes,
    pub provider_times: ProviderTimes,
    pub stats: ExecutionStats,
    pub billing: ExecutionBilling,
}

impl ExecutionResult {
    /// The handler's own return value (`result.output` of the answer), which is what a
    /// benchmark's `validate_output` expects.
    pub fn handler_output(&self) -> Option<&serde_json::Value> {
        self.output.get("result").and_then(|r| r.get("output"))
    }
}

/// Client-side times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionTimes {
    /// Microseconds the client waited, from before connecting to the last byte of the answer.
    pub client: i64,
    /// Local time the request began, as Python prints a `datetime` (SeBS's format).
    pub client_begin: String,
    pub client_end: String,
    /// Microseconds between the container's `begin` and `end`: the handler alone.
    pub benchmark: i64,
    /// Microseconds the function's import took, for the call that paid for it; else 0.
    pub initialization: i64,
    /// Seconds until the request could be sent (curl's PRETRANSFER).
    pub http_startup: f64,
    /// Seconds until the first byte of the answer (curl's STARTTRANSFER).
    pub http_first_byte_return: f64,
}

/// Times a cloud provider reports; the local platform has none, as in SeBS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderTimes {
    pub initialization: i64,
    pub execution: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStats {
    /// Peak memory of the invocation in MB, when it was measured.
    pub memory_used: Option<f64>,
    pub cold_start: bool,
    pub failure: bool,
}

/// Billing, which the local platform does not do; kept so SeBS's readers find the keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionBilling {
    #[serde(rename = "_memory")]
    pub memory: Option<u64>,
    #[serde(rename = "_billed_time")]
    pub billed_time: Option<u64>,
    #[serde(rename = "_gb_seconds")]
    pub gb_seconds: f64,
}

/// Formats a wall-clock instant (microseconds since the epoch) in local time the way
/// Python's `str(datetime)` does, which is how SeBS serialises `client_begin`.
pub fn python_datetime(epoch_micros: i64) -> String {
    use chrono::TimeZone;
    let secs = epoch_micros.div_euclid(1_000_000);
    let micros = epoch_micros.rem_euclid(1_000_000) as u32;
    match chrono::Local.timestamp_opt(secs, micros * 1000) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            // Python leaves the fraction out when it is zero.
            if micros == 0 {
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            }
        }
        chrono::LocalResult::None => sebs_wire::EpochMicros(epoch_micros).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_sebs_keys() {
        let r = ExecutionResult {
            output: serde_json::json!({"is_cold": true, "result": {"output": {"result": 1}}}),
            request_id: "r".into(),
            times: ExecutionTimes {
                client: 1520,
                client_begin: "b".into(),
                client_end: "e".into(),
                benchmark: 1100,
                initialization: 0,
                http_startup: 0.00021,
                http_first_byte_return: 0.0014,
            },
            provider_times: ProviderTimes::default(),
            stats: ExecutionStats::default(),
            billing: ExecutionBilling::default(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["billing"]["_gb_seconds"], 0.0);
        assert!(v["billing"]["_memory"].is_null());
        assert_eq!(v["stats"]["cold_start"], false);
        assert_eq!(v["times"]["client"], 1520);
        assert_eq!(r.handler_output(), Some(&serde_json::json!({"result": 1})));
    }

    #[test]
    fn python_datetime_shape() {
        let s = python_datetime(1_700_000_000_123_456);
        assert_eq!(s.len(), "2023-11-14 22:13:20.123456".len(), "{s}");
        assert!(s.ends_with(".123456"), "{s}");
        let whole = python_datetime(1_700_000_000_000_000);
        assert_eq!(whole.len(), "2023-11-14 22:13:20".len(), "{whole}");
    }
}
