//! perf-cost: batches of invocations in four modes until enough valid samples exist.
//!
//! The loop ([`run_configuration`]) is a function of a [`Target`] so that its rules are
//! tested without containers; [`PoolTarget`] is the real one, a [`FunctionPool`].
//! The rules are SeBS's: batches of `concurrent-invocations` until `repetitions` valid
//! samples; the first batch is a warm-up and dropped; in `cold` a warm result and in `warm`
//! a cold one is incorrect, counted and kept apart; failures are recorded with their
//! message and never end the run; `cold` and `burst` force a cold start before every batch.
//! Unlike SeBS, there is no fixed 10 s wait per batch, and a run whose batches keep giving
//! no valid sample stops after [`MAX_FRUITLESS_BATCHES`] instead of looping forever.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sebs_platform::{FunctionConfig, PlatformError};
use sebs_stats::Summary;
use sebs_trigger::{ExecutionResult, InvokeError};

use crate::config::RunType;
use crate::pool::FunctionPool;

/// Batches in a row without a valid sample after which a configuration gives up.
pub const MAX_FRUITLESS_BATCHES: usize = 5;

/// One invocation's outcome, with the engine whose container served it (as `out.json`
/// names engines) when the target knows it.
#[derive(Debug)]
pub struct Call {
    pub engine: Option<String>,
    pub result: Result<ExecutionResult, InvokeError>,
}

/// What the loop needs from a deployed function.
#[allow(async_fn_in_trait)]
pub trait Target {
    fn function_name(&self) -> String;
    /// Makes the next `n` invocations cold.
    async fn force_cold(&mut self, n: usize) -> Result<(), PlatformError>;
    /// Sends `n` invocations at once.
    async fn invoke_batch(
        &mut self,
        input: &serde_json::Value,
        n: usize,
    ) -> Result<Vec<Call>, PlatformError>;
    /// Called after each batch of a mode that forces cold starts, with the batch size.
    fn prepare_cold(&mut self, _n: usize) {}
}

/// A [`FunctionPool`] as the loop's target.
pub struct PoolTarget<'a>(pub &'a mut FunctionPool);

impl Target for PoolTarget<'_> {
    fn function_name(&self) -> String {
        self.0.name().to_string()
    }
    async fn force_cold(&mut self, n: usize) -> Result<(), PlatformError> {
        self.0.force_cold(n).await
    }
    async fn invoke_batch(
        &mut self,
        input: &serde_json::Value,
        n: usize,
    ) -> Result<Vec<Call>, PlatformError> {
        self.0.invoke_batch(input, n).await
    }
    fn prepare_cold(&mut self, n: usize) {
        self.0.prewarm(n);
    }
}

/// How one configuration runs.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub run_type: RunType,
    pub repetitions: usize,
    pub concurrent_invocations: usize,
    pub pause_between_batches: Duration,
}

/// Progress after each batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub run_type: RunType,
    pub gathered: usize,
    pub wanted: usize,
    pub failures: usize,
    pub warm_up: bool,
}

/// Everything one configuration (mode × memory size) measured.
#[derive(Debug, Clone)]
pub struct ConfigurationResult {
    pub run_type: RunType,
    /// The memory size asked for by `memory-sizes`, which names the results file.
    pub memory_mb: Option<u64>,
    /// The memory limit the function ran with (the benchmark's own when no size was
    /// asked for); 0 when unknown.
    pub function_memory_mb: u64,
    /// The settings the function ran with (its limits), recorded in the results file so
    /// that a figure can be traced to them; `None` when the loop ran without the platform.
    pub function: Option<FunctionConfig>,
    pub function_name: String,
    /// Valid samples, in the order they arrived.
    pub valid: Vec<ExecutionResult>,
    /// Results of the wrong temperature (warm in `cold`, cold in `warm`).
    pub incorrect: Vec<ExecutionResult>,
    /// One message per failed invocation, naming the engine it was sent to when known.
    pub failures: Vec<String>,
    /// The engine that served each valid and incorrect invocation, by request id (empty
    /// when the target does not say).
    pub engines: BTreeMap<String, String>,
    pub cold_count: usize,
    /// Seconds since the epoch when the configuration began and ended.
    pub begin_time: f64,
    pub end_time: f64,
    /// Wall time of each batch including forcing cold starts, warm-up included.
    pub batch_times: Vec<Duration>,
    /// Why the configuration ended before `repetitions` valid samples, if it did.
    pub stopped_early: Option<String>,
    /// The sandbox the function's containers ran in, when the target knows it.
    pub sandbox: Option<sebs_platform::SandboxRecord>,
    /// The engines that failed to take a container by the configuration's end (placements
    /// then went to the others), each with its first failure.
    pub engine_failures: BTreeMap<String, String>,
}

impl ConfigurationResult {
    /// Client times of the valid samples in milliseconds, as SeBS computes statistics on.
    pub fn client_times_ms(&self) -> Vec<f64> {
        self.valid
            .iter()
            .map(|r| r.times.client as f64 / 1000.0)
            .collect()
    }

    /// Statistics of the client times; `None` below two samples.
    pub fn summary(&self) -> Option<Summary> {
        Summary::new(&self.client_times_ms()).ok()
    }
}

/// An error with its causes, `a: b: c`, as one line for the failures list.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs one configuration until `repetitions` valid samples exist, `stop` is set (checked
/// between batches), or batches keep giving nothing valid.
pub async fn run_configuration<T: Target>(
    target: &mut T,
    settings: &RunSettings,
    input: &serde_json::Value,
    memory_mb: Option<u64>,
    stop: &AtomicBool,
    progress: &(dyn Fn(Progress) + Sync),
) -> ConfigurationResult {
    let run_type = settings.run_type;
    let per_batch = match run_type {
        RunType::Sequential => 1,
        _ => settings.concurrent_invocations.max(1),
    };
    let mut out = ConfigurationResult {
        run_type,
        memory_mb,
        function_memory_mb: memory_mb.unwrap_or(0),
        function: None,
        function_name: target.function_name(),
        valid: Vec::new(),
        incorrect: Vec::new(),
        failures: Vec::new(),
        engines: BTreeMap::new(),
        cold_count: 0,
        begin_time: epoch_seconds(),
        end_time: 0.0,
        batch_times: Vec::new(),
        stopped_early: None,
        sandbox: None,
        engine_failures: BTreeMap::new(),
    };
    let forces_cold = matches!(run_type, RunType::Cold | RunType::Burst);
    if run_type == RunType::Sequential {
        // SeBS warms the container up with one call before the first batch.
        if let Err(e) = target.invoke_batch(input, 1).await {
            out.stopped_early = Some(format!(
                "could not deploy the function: {}",
                sebs_wire::ErrorChain(&e)
            ));
        }
    }
    let mut first = true;
    let mut fruitless = 0;
    while out.stopped_early.is_none() && out.valid.len() < settings.repetitions {
        if stop.load(Ordering::SeqCst) {
            out.stopped_early = Some("interrupted".into());
            break;
        }
        let began = Instant::now();
        if forces_cold {
            if let Err(e) = target.force_cold(per_batch).await {
                out.stopped_early = Some(format!(
                    "could not force a cold start: {}",
                    sebs_wire::ErrorChain(&e)
                ));
                break;
            }
        }
        let results = match target.invoke_batch(input, per_batch).await {
            Ok(results) => results,
            Err(e) => {
                out.stopped_early = Some(format!(
                    "could not deploy the function: {}",
                    sebs_wire::ErrorChain(&e)
                ));
                break;
            }
        };
        out.batch_times.push(began.elapsed());
        let before = out.valid.len();
        for Call { engine, result } in results {
            if let (Some(engine), Ok(r)) = (&engine, &result) {
                if !first {
                    out.engines.insert(r.request_id.clone(), engine.clone());
                }
            }
            match result {
                Err(e) => out.failures.push(match &engine {
                    Some(engine) => format!("on engine {engine}: {}", error_chain(&e)),
                    None => error_chain(&e),
                }),
                Ok(_) if first => {}
                Ok(r) if run_type == RunType::Cold && !r.stats.cold_start => out.incorrect.push(r),
                Ok(r) if run_type == RunType::Warm && r.stats.cold_start => out.incorrect.push(r),
                Ok(r) => {
                    out.cold_count += usize::from(r.stats.cold_start);
                    out.valid.push(r);
                }
            }
        }
        progress(Progress {
            run_type,
            gathered: out.valid.len(),
            wanted: settings.repetitions,
            failures: out.failures.len(),
            warm_up: first,
        });
        if !first && out.valid.len() == before {
            fruitless += 1;
            if fruitless >= MAX_FRUITLESS_BATCHES {
                out.stopped_early = Some(format!(
                    "{MAX_FRUITLESS_BATCHES} batches in a row gave no valid sample; last failure: {}",
                    out.failures.last().map_or("none", String::as_str)
                ));
            }
        } else {
            fruitless = 0;
        }
        first = false;
        // Start fresh containers for the next batch, if there will be one.
        let another = out.stopped_early.is_none()
            && out.valid.len() < settings.repetitions
            && !stop.load(Ordering::SeqCst);
        if forces_cold && another {
            target.prepare_cold(per_batch);
        }
        if !settings.pause_between_batches.is_zero() {
            tokio::time::sleep(settings.pause_between_batches).await;
        }
    }
    // The loop may overshoot by part of a batch; SeBS keeps those samples too.
    out.end_time = epoch_seconds();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sebs_trigger::{ExecutionBilling, ExecutionStats, ExecutionTimes, ProviderTimes};

    /// A target whose containers behave like the platform's: fresh ones answer cold once.
    struct Simulated {
        /// Whether each container has served an invocation.
        served: Vec<bool>,
        fail_every: Option<usize>,
        calls: usize,
        forced: usize,
        prewarmed: usize,
    }

    fn result(cold: bool, n: usize) -> ExecutionResult {
        ExecutionResult {
            output: serde_json::json!({"is_cold": cold}),
            request_id: format!("r{n}"),
            times: ExecutionTimes {
                client: 1000 + n as i64,
                client_begin: String::new(),
                client_end: String::new(),
                benchmark: 10,
                initialization: 0,
                http_startup: 0.0,
                http_first_byte_return: 0.0,
            },
            provider_times: ProviderTimes::default(),
            stats: ExecutionStats {
                memory_used: None,
                cold_start: cold,
                failure: false,
            },
            billing: ExecutionBilling::default(),
        }
    }

    impl Target for Simulated {
        fn function_name(&self) -> String {
            "f".into()
        }
        async fn force_cold(&mut self, n: usize) -> Result<(), PlatformError> {
            self.forced += 1;
            self.served = vec![false; n];
            Ok(())
        }
        async fn invoke_batch(
            &mut self,
            _input: &serde_json::Value,
            n: usize,
        ) -> Result<Vec<Call>, PlatformError> {
            while self.served.len() < n {
                self.served.push(false);
            }
            let mut out = Vec::new();
            for i in 0..n {
                self.calls += 1;
                if self
                    .fail_every
                    .is_some_and(|k| self.calls.is_multiple_of(k))
                {
                    out.push(Call {
                        engine: Some(format!("tcp://e{}:2375", i % 2)),
                        result: Err(InvokeError::Connect {
                            url: "u".into(),
                            source: std::io::Error::other("refused"),
                        }),
                    });
                    continue;
                }
                let cold = !self.served[i];
                self.served[i] = true;
                out.push(Call {
                    engine: Some(format!("tcp://e{}:2375", i % 2)),
                    result: Ok(result(cold, self.calls)),
                });
            }
            Ok(out)
        }
        fn prepare_cold(&mut self, _n: usize) {
            self.prewarmed += 1;
        }
    }

    fn sim(fail_every: Option<usize>) -> Simulated {
        Simulated {
            served: Vec::new(),
            fail_every,
            calls: 0,
            forced: 0,
            prewarmed: 0,
        }
    }

    async fn run(
        target: &mut Simulated,
        run_type: RunType,
        reps: usize,
        conc: usize,
    ) -> ConfigurationResult {
        let settings = RunSettings {
            run_type,
            repetitions: reps,
            concurrent_invocations: conc,
            pause_between_batches: Duration::ZERO,
        };
        run_configuration(
            target,
            &settings,
            &serde_json::json!({}),
            None,
            &AtomicBool::new(false),
            &|_| {},
        )
        .await
    }

    #[tokio::test]
    async fn cold_gives_only_cold_and_warm_only_warm() {
        let mut t = sim(None);
        let r = run(&mut t, RunType::Cold, 6, 3).await;
        assert_eq!(r.valid.len(), 6);
        assert!(r.valid.iter().all(|r| r.stats.cold_start));
        assert_eq!(r.cold_count, 6);
        // Warm-up batch plus two batches, each after a forced cold start.
        assert_eq!((t.forced, r.batch_times.len()), (3, 3));
        // Fresh containers are prepared for every batch but the last.
        assert_eq!(t.prewarmed, 2);

        let mut t = sim(None);
        let r = run(&mut t, RunType::Warm, 6, 3).await;
        assert_eq!(r.valid.len(), 6);
        assert!(r.valid.iter().all(|r| !r.stats.cold_start));
        assert_eq!((t.forced, r.cold_count), (0, 0));
        assert!(
            r.incorrect.is_empty(),
            "the cold warm-up batch is dropped, not incorrect"
        );
    }

    #[tokio::test]
    async fn sequential_warms_up_and_invokes_one_at_a_time() {
        let mut t = sim(None);
        let r = run(&mut t, RunType::Sequential, 4, 8).await;
        assert_eq!(r.valid.len(), 4);
        // One warm-up call, one dropped batch of one, then four.
        assert_eq!(t.calls, 6);
        assert_eq!(r.cold_count, 0);
    }

    #[tokio::test]
    async fn failures_are_recorded_and_never_fatal() {
        let mut t = sim(Some(3));
        let r = run(&mut t, RunType::Burst, 10, 4).await;
        assert!(r.valid.len() >= 10);
        assert!(!r.failures.is_empty());
        assert!(r.failures[0].contains("refused"), "{:?}", r.failures);
        // Each failure names the engine it was sent to, each sample the one that served it.
        assert!(
            r.failures[0].starts_with("on engine tcp://e"),
            "{:?}",
            r.failures
        );
        for v in &r.valid {
            assert!(
                r.engines[&v.request_id].starts_with("tcp://e"),
                "{:?}",
                r.engines
            );
        }
        assert!(r.stopped_early.is_none());

        // Every call fails: the run gives up instead of looping forever.
        let mut t = sim(Some(1));
        let r = run(&mut t, RunType::Warm, 10, 2).await;
        assert!(r.valid.is_empty());
        assert!(r
            .stopped_early
            .as_deref()
            .unwrap_or("")
            .contains("no valid sample"));
        assert_eq!(r.batch_times.len(), 1 + MAX_FRUITLESS_BATCHES);
    }

    #[tokio::test]
    async fn stop_ends_after_the_current_batch() {
        let mut t = sim(None);
        let stop = AtomicBool::new(false);
        let settings = RunSettings {
            run_type: RunType::Warm,
            repetitions: 1000,
            concurrent_invocations: 2,
            pause_between_batches: Duration::ZERO,
        };
        let stop_after_two = |p: Progress| {
            if p.gathered >= 2 {
                stop.store(true, Ordering::SeqCst);
            }
        };
        let r = run_configuration(
            &mut t,
            &settings,
            &serde_json::json!({}),
            None,
            &stop,
            &stop_after_two,
        )
        .await;
        assert_eq!(r.valid.len(), 2);
        assert_eq!(r.stopped_early.as_deref(), Some("interrupted"));
    }
}
