//! Changing a running function: its resources, its code, and forcing its next call to be cold.

use sebs_container::ContainerError;
use sebs_package::Package;

use crate::function::{nano_cpus, Function, FunctionConfig, Platform, PlatformError};

/// How a configuration change reaches a running function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigChange {
    /// Nothing differs.
    None,
    /// Only memory and CPU limits differ, and both can be set on the running container.
    Live,
    /// Something the agent reads at start differs (timeout, workers, language), or a limit
    /// is being removed, which the engine cannot do live: a new container is needed.
    Replace,
}

/// The pure decision of [`Platform::update_function_configuration`].
pub fn config_change(old: &FunctionConfig, new: &FunctionConfig) -> ConfigChange {
    if old == new {
        return ConfigChange::None;
    }
    let agent_side = old.language != new.language
        || old.language_version != new.language_version
        || old.timeout_s != new.timeout_s
        || old.workers != new.workers
        // The engine changes none of the sandbox on a running container.
        || old.sandbox != new.sandbox
        || old.env != new.env;
    // The engine treats a CPU limit of 0 in an update as "unchanged", so dropping one needs
    // a new container.
    let cpu_limit_removed = old.cpus.is_some() && new.cpus.is_none();
    if agent_side || cpu_limit_removed {
        ConfigChange::Replace
    } else {
        ConfigChange::Live
    }
}

impl Platform {
    /// Applies `config` to a running function: memory and CPU limits are changed on the live
    /// container; a new timeout, worker count or language needs a new container (the agent
    /// reads them at start), and so does a limit the engine refuses to change live (e.g. a
    /// memory limit below what the container uses now). A replaced function answers its next
    /// call cold.
    pub async fn update_function_configuration(
        &self,
        function: &mut Function,
        config: &FunctionConfig,
    ) -> Result<(), PlatformError> {
        config.check()?;
        match config_change(&function.config, config) {
            ConfigChange::None => Ok(()),
            ConfigChange::Replace => {
                let (dir, hash) = (function.package_dir.clone(), function.hash.clone());
                self.replace(function, config, &dir, &hash).await
            }
            ConfigChange::Live => {
                let memory = config.memory_mb.saturating_mul(1024 * 1024);
                let updated = sebs_container::update_resources(
                    &function.engine.docker,
                    &function.container.id,
                    Some(memory),
                    config.cpus.map(nano_cpus),
                )
                .await;
                match updated {
                    Ok(()) => {
                        function.config = config.clone();
                        tracing::info!(
                            function = %function.name,
                            container = %function.container.id,
                            memory_mb = config.memory_mb,
                            cpus = ?config.cpus,
                            "resources changed live"
                        );
                        Ok(())
                    }
                    Err(ContainerError::UpdateRefused { message, .. }) => {
                        tracing::info!(
                            function = %function.name,
                            "the engine cannot change the limits live ({message}); replacing the container"
                        );
                        let (dir, hash) = (function.package_dir.clone(), function.hash.clone());
                        self.replace(function, config, &dir, &hash).await
                    }
                    Err(source) => Err(PlatformError::Update {
                        function: function.name.clone(),
                        container: function.container.id.clone(),
                        source,
                    }),
                }
            }
        }
    }

    /// Replaces the function's container with a fresh one, so that its next invocation is
    /// cold (`is_cold: true`, the import timed again). The new container is up before the
    /// old one is removed; its address may differ.
    pub async fn enforce_cold_start(&self, function: &mut Function) -> Result<(), PlatformError> {
        let (config, dir, hash) = (
            function.config.clone(),
            function.package_dir.clone(),
            function.hash.clone(),
        );
        self.replace(function, &config, &dir, &hash).await
    }

    /// [`Platform::enforce_cold_start`] for many functions, [`crate::DEPLOY_CONCURRENCY`] at a
    /// time; the first error is returned after all have been tried.
    pub async fn enforce_cold_starts(
        &self,
        functions: &mut [Function],
    ) -> Result<(), PlatformError> {
        let gate = tokio::sync::Semaphore::new(crate::DEPLOY_CONCURRENCY);
        let replacing = functions.iter_mut().map(|f| async {
            let _permit = gate.acquire().await;
            self.enforce_cold_start(f).await
        });
        futures_util::future::join_all(replacing)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(drop)
    }

    /// Runs `package` in the function from now on: a package with another hash (or in another
    /// directory) replaces the container; the same package changes nothing.
    pub async fn update_function_code(
        &self,
        function: &mut Function,
        package: &Package,
    ) -> Result<(), PlatformError> {
        if package.hash == function.hash && package.dir == function.package_dir {
            return Ok(());
        }
        let config = function.config.clone();
        self.replace(function, &config, &package.dir, &package.hash)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sebs_wire::Language;

    #[test]
    fn which_changes_apply_live() {
        let base = FunctionConfig {
            language: Language::Python,
            language_version: "3.11".into(),
            memory_mb: 256,
            timeout_s: 10,
            cpus: Some(1.0),
            workers: 1,
            sandbox: crate::Sandbox::default(),
            env: Default::default(),
        };
        let check = |change: &dyn Fn(&mut FunctionConfig), expect: ConfigChange| {
            let mut new = base.clone();
            change(&mut new);
            assert_eq!(config_change(&base, &new), expect, "{new:?}");
        };
        check(&|_| {}, ConfigChange::None);
        check(&|c| c.memory_mb = 512, ConfigChange::Live);
        check(&|c| c.memory_mb = 128, ConfigChange::Live);
        check(&|c| c.cpus = Some(0.5), ConfigChange::Live);
        check(&|c| c.cpus = None, ConfigChange::Replace);
        check(&|c| c.timeout_s = 20, ConfigChange::Replace);
        check(&|c| c.workers = 2, ConfigChange::Replace);
        check(&|c| c.sandbox.pids_limit = None, ConfigChange::Replace);
        check(
            &|c| c.sandbox.user = crate::FunctionUser::Root,
            ConfigChange::Replace,
        );
        check(
            &|c| {
                c.env
                    .insert("MINIO_ADDRESS".into(), "172.17.0.2:9000".into());
            },
            ConfigChange::Replace,
        );
        check(
            &|c| c.language_version = "3.12".into(),
            ConfigChange::Replace,
        );
        check(
            &|c| {
                c.memory_mb = 512;
                c.timeout_s = 5
            },
            ConfigChange::Replace,
        );
    }
}
