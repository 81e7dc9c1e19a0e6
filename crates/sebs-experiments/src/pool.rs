//! A function's pool of containers, as a FaaS platform keeps one: grown on demand for
//! concurrent invocations, and replaced by fresh containers to force cold starts.
//!
//! Forcing a cold start means the next invocation runs in a container that has never
//! served one, so it pays the first import. Waiting on Docker to create that container is
//! not part of a cold start on a real platform, so the pool can start fresh containers
//! ahead of time ([`FunctionPool::prewarm`], like OpenWhisk's prewarm pool) and
//! [`FunctionPool::force_cold`] then only swaps them in.

use futures_util::future::join_all;
use sebs_package::Package;
use sebs_platform::{Function, FunctionConfig, Platform, PlatformError};
use tokio::task::JoinHandle;

use crate::perf_cost::Call;

pub struct FunctionPool {
    platform: Platform,
    name: String,
    benchmark: String,
    package: Package,
    image: String,
    config: FunctionConfig,
    /// Containers that may have served invocations; `warm[i]` gets the i-th of a batch.
    warm: Vec<Function>,
    /// Containers started ahead that have served nothing yet.
    fresh: Vec<Function>,
    /// Fresh containers still starting.
    starting: Option<JoinHandle<Result<Vec<Function>, PlatformError>>>,
    /// Containers a forced cold start replaced, removed once the next batch is answered: a
    /// removal (the agent's exit, the engine's tear-down) takes CPU that the batch's cold
    /// invocations, the figures being measured, would otherwise share.
    replaced: Vec<Function>,
    /// Removals running in the background.
    retiring: Vec<JoinHandle<()>>,
}

impl FunctionPool {
    pub fn new(
        platform: Platform,
        name: String,
        benchmark: String,
        package: Package,
        image: String,
        config: FunctionConfig,
    ) -> FunctionPool {
        FunctionPool {
            platform,
            name,
            benchmark,
            package,
            image,
            config,
            warm: Vec::new(),
            fresh: Vec::new(),
            starting: None,
            replaced: Vec::new(),
            retiring: Vec::new(),
        }
    }

    /// The function's name, under which SeBS files its invocations.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    /// The containers that serve invocations now.
    pub fn containers(&self) -> &[Function] {
        &self.warm
    }

    /// Invokes `n` containers at once, one invocation each, growing the pool to `n` first;
    /// each outcome names the engine of its container.
    pub async fn invoke_batch(
        &mut self,
        input: &serde_json::Value,
        n: usize,
    ) -> Result<Vec<Call>, PlatformError> {
        self.grow(n).await?;
        let platform = &self.platform;
        let calls = self.warm[..n].iter().map(|f| async move {
            Call {
                engine: Some(f.engine.address.to_string()),
                result: platform.invoke(f, input).await,
            }
        });
        let calls = join_all(calls).await;
        let replaced = std::mem::take(&mut self.replaced);
        self.retire(replaced);
        Ok(calls)
    }

    /// Starts `n` fresh containers in the background, for the next [`Self::force_cold`].
    pub fn prewarm(&mut self, n: usize) {
        if self.starting.is_some() || self.fresh.len() >= n {
            return;
        }
        let missing = n - self.fresh.len();
        let platform = self.platform.clone();
        let (name, benchmark) = (self.name.clone(), self.benchmark.clone());
        let (package, image, config) = (
            self.package.clone(),
            self.image.clone(),
            self.config.clone(),
        );
        self.starting = Some(tokio::spawn(async move {
            platform
                .create_functions(missing, &name, &benchmark, &package, &image, &config)
                .await
        }));
    }

    /// Replaces every container with a fresh one, so that the next `n` invocations are
    /// cold; uses prewarmed containers where there are any. The replaced containers are
    /// removed after the next batch.
    pub async fn force_cold(&mut self, n: usize) -> Result<(), PlatformError> {
        self.collect_started().await;
        let old = std::mem::take(&mut self.warm);
        self.replaced.extend(old);
        let take = n.min(self.fresh.len());
        self.warm = self.fresh.drain(..take).collect();
        self.grow(n).await
    }

    /// Applies a new configuration (e.g. another memory size): like SeBS's update of a
    /// local function, every container is replaced, so the next invocations are cold.
    pub async fn reconfigure(&mut self, config: FunctionConfig, name: String) {
        self.collect_started().await;
        self.retire_all();
        self.config = config;
        self.name = name;
    }

    /// Removes every container of the pool, waiting for removals to finish.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.starting.take() {
            // A failed prewarm removed its own containers; there is nothing to add.
            if let Ok(Ok(started)) = task.await {
                self.fresh.extend(started);
            }
        }
        self.retire_all();
        for task in self.retiring.drain(..) {
            let _ = task.await;
        }
    }

    /// Makes `warm` at least `n` long, with prewarmed containers first.
    async fn grow(&mut self, n: usize) -> Result<(), PlatformError> {
        if self.warm.len() >= n {
            return Ok(());
        }
        self.collect_started().await;
        let take = (n - self.warm.len()).min(self.fresh.len());
        self.warm.extend(self.fresh.drain(..take));
        let missing = n.saturating_sub(self.warm.len());
        if missing > 0 {
            let created = self
                .platform
                .create_functions(
                    missing,
                    &self.name,
                    &self.benchmark,
                    &self.package,
                    &self.image,
                    &self.config,
                )
                .await?;
            self.warm.extend(created);
        }
        Ok(())
    }

    /// Moves finished background starts into `fresh`.
    /// A failed prewarm is not fatal: whoever needs the containers starts them itself (and
    /// meets the error there, if it persists).
    async fn collect_started(&mut self) {
        if let Some(task) = self.starting.take() {
            match task.await {
                Ok(Ok(started)) => self.fresh.extend(started),
                Ok(Err(e)) => tracing::warn!(
                    "prewarming containers failed: {}",
                    sebs_wire::ErrorChain(&e)
                ),
                Err(e) => tracing::warn!(
                    "prewarming containers failed: {}",
                    sebs_wire::ErrorChain(&e)
                ),
            }
        }
    }

    /// Removes every container the pool has, in the background.
    fn retire_all(&mut self) {
        let all: Vec<Function> = self
            .warm
            .drain(..)
            .chain(self.fresh.drain(..))
            .chain(self.replaced.drain(..))
            .collect();
        self.retire(all);
    }

    fn retire(&mut self, functions: Vec<Function>) {
        self.retiring.retain(|t| !t.is_finished());
        for f in functions {
            let platform = self.platform.clone();
            self.retiring.push(tokio::spawn(async move {
                if let Err(e) = platform.stop(&f).await {
                    tracing::warn!(
                        "could not remove a retired container: {}",
                        sebs_wire::ErrorChain(&e)
                    );
                }
            }));
        }
    }
}
