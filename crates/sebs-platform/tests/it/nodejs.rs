//! SeBS Node.js benchmarks in real containers of the Node.js image, behind the real agent:
//! cold and warm starts, handler timing, thrown errors, timeouts, shipped data files, and
//! npm dependencies installed by `DockerBuildEnv`.

use std::path::Path;

use sebs_container::image::{ensure_image, BaseImageBuilder, ImageChoice};
use sebs_package::{find_benchmark, BuildEnv, PackageCache};
use sebs_platform::{DockerBuildEnv, Function, FunctionConfig};
use sebs_testkit::{trial, Trial, ENGINE};
use sebs_trigger::InvokeError;
use sebs_wire::{ErrorKind, Language};
use serde_json::json;

use crate::{fixtures, with_harness, Harness, AGENT};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            nodejs_cold_then_warm_and_a_100_ms_sleep_is_100_ms,
            ENGINE,
            AGENT
        ),
        trial!(
            nodejs_errors_and_timeouts_are_clear_and_the_function_goes_on,
            ENGINE,
            AGENT
        ),
        trial!(nodejs_data_files_and_npm_dependencies, ENGINE, AGENT),
    ]
}

const VERSION: &str = "18";

/// A Node.js benchmark whose handler does what its input says.
const PROGRAMMABLE_JS: &str = r#"
exports.handler = async function (event) {
  const mode = event.mode || 'noop';
  if (mode === 'sleep') {
    const start = process.hrtime.bigint();
    await new Promise((resolve) => setTimeout(resolve, event.seconds * 1000));
    return { mode, slept_us: Number((process.hrtime.bigint() - start) / 1000n) };
  } else if (mode === 'raise') {
    throw new RangeError('asked to raise');
  } else if (mode === 'whoami') {
    console.log('console.log from the handler');
    require('fs').writeSync(1, 'written to fd 1\n');
    return { uid: process.getuid(), gid: process.getgid() };
  }
  return { mode };
};
"#;

impl Harness {
    /// The Node.js image, built once from Debian's nodejs when no official one is present.
    pub(crate) async fn nodejs_image(&self) -> String {
        let choice = ImageChoice::for_language(Language::Nodejs, VERSION);
        ensure_image(self.platform.docker(), &choice, &BaseImageBuilder::new())
            .await
            .expect("a Node.js image")
            .tag
    }

    /// Packages the Node.js version of benchmark `name` under `root` (installing its npm
    /// dependencies in a build container of `image`) and starts it.
    async fn deploy_nodejs(&self, root: &Path, name: &str, image: &str) -> Function {
        let bench = find_benchmark(root, name).unwrap();
        let cache = PackageCache::new(self.cache.path());
        let env = DockerBuildEnv::new(
            self.platform.docker().clone(),
            image,
            tokio::runtime::Handle::current(),
        );
        let built = bench.clone();
        let package = tokio::task::spawn_blocking(move || {
            let env: &dyn BuildEnv = &env;
            cache.get_or_build(&built, Language::Nodejs, VERSION, env, false)
        })
        .await
        .unwrap()
        .unwrap();
        let config = FunctionConfig::from_benchmark(&bench.config, Language::Nodejs, VERSION);
        self.platform
            .create_function(
                &format!("test-nodejs-{}", bench.name),
                &bench.name,
                &package,
                image,
                &config,
            )
            .await
            .unwrap()
    }
}

/// Writes a Node.js-only benchmark `<root>/900.tests/<name>/` with a 2 s timeout.
fn write_nodejs_benchmark(root: &Path, name: &str, code: &str) {
    let dir = root.join("900.tests").join(name);
    std::fs::create_dir_all(dir.join("nodejs")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        json!({"timeout": 2, "memory": 256, "languages": ["nodejs"], "modules": []}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("input.json"), "{}").unwrap();
    std::fs::write(dir.join("nodejs/function.js"), code).unwrap();
    std::fs::write(
        dir.join("nodejs/package.json"),
        r#"{"name": "programmable", "version": "1.0.0", "dependencies": {}}"#,
    )
    .unwrap();
}

async fn nodejs_cold_then_warm_and_a_100_ms_sleep_is_100_ms() {
    with_harness(|h| async move {
        let image = h.nodejs_image().await;
        let f = h.deploy_nodejs(&fixtures(), "000.noop", &image).await;
        let first = h.platform.invoke(&f, &json!({})).await.unwrap();
        assert!(first.stats.cold_start);
        assert!(
            first.times.initialization > 0,
            "the cold call reports the require time"
        );
        assert_eq!(first.handler_output(), Some(&json!({})));
        for _ in 0..3 {
            let warm = h.platform.invoke(&f, &json!({})).await.unwrap();
            assert!(!warm.stats.cold_start);
            assert_eq!(warm.times.initialization, 0);
        }
        h.platform.stop(&f).await.unwrap();

        let sleep = h.deploy_nodejs(&fixtures(), "010.sleep", &image).await;
        let r = h.platform.invoke(&sleep, &json!({"sleep": 0.1})).await;
        assert_eq!(r.unwrap().handler_output(), Some(&json!({"result": 0.1})));
        h.platform.stop(&sleep).await.unwrap();
        let root = h.benchmarks.path().to_path_buf();
        write_nodejs_benchmark(&root, "910.programmable-js", PROGRAMMABLE_JS);
        let f = h.deploy_nodejs(&root, "910.programmable-js", &image).await;
        crate::assert_sleep_is_100_ms(&h.platform, &f).await;
    })
    .await;
}

async fn nodejs_errors_and_timeouts_are_clear_and_the_function_goes_on() {
    with_harness(|h| async move {
        let image = h.nodejs_image().await;
        let root = h.benchmarks.path().to_path_buf();
        write_nodejs_benchmark(&root, "910.programmable-js", PROGRAMMABLE_JS);
        let f = h.deploy_nodejs(&root, "910.programmable-js", &image).await;

        match h.platform.invoke(&f, &json!({"mode": "raise"})).await {
            Err(InvokeError::Function {
                status: 500,
                answer,
                ..
            }) => {
                assert_eq!(answer.kind, ErrorKind::HandlerError);
                assert_eq!(answer.exception_type.as_deref(), Some("RangeError"));
                let stack = answer.traceback.as_deref().unwrap_or("");
                assert!(stack.contains("RangeError: asked to raise"), "{stack}");
                assert!(stack.contains("/function/function/function.js:"), "{stack}");
            }
            other => panic!("expected a handler error, got {other:?}"),
        }
        let ok = h
            .platform
            .invoke(&f, &json!({"mode": "noop"}))
            .await
            .unwrap();
        assert_eq!(ok.handler_output(), Some(&json!({"mode": "noop"})));

        crate::assert_stopped_by_its_timeout(&h.platform, &f).await;
        let ok = h
            .platform
            .invoke(&f, &json!({"mode": "noop"}))
            .await
            .unwrap();
        assert_eq!(ok.handler_output(), Some(&json!({"mode": "noop"})));
        h.platform.stop(&f).await.unwrap();

        // As another user than the agent, what the handler prints stays out of the protocol.
        let platform = &h.platform;
        let bench = find_benchmark(&root, "910.programmable-js").unwrap();
        let package = PackageCache::new(h.cache.path())
            .get_or_build(
                &bench,
                Language::Nodejs,
                VERSION,
                &sebs_package::NoDeps,
                false,
            )
            .unwrap();
        let mut config = FunctionConfig::from_benchmark(&bench.config, Language::Nodejs, VERSION);
        config.sandbox.user = sebs_platform::FunctionUser::Id {
            uid: 65534,
            gid: 65534,
        };
        let f = platform
            .create_function("test-nodejs-nobody", &bench.name, &package, &image, &config)
            .await
            .unwrap();
        let mut outputs = Vec::new();
        for _ in 0..2 {
            let r = platform.invoke(&f, &json!({"mode": "whoami"})).await;
            outputs.push(r.map(|r| r.handler_output().cloned()));
        }
        platform.stop(&f).await.unwrap();
        for output in outputs {
            assert_eq!(output.unwrap(), Some(json!({"uid": 65534, "gid": 65534})));
        }

        // The fixtures that throw and that run past their timeout.
        let f = h.deploy_nodejs(&fixtures(), "020.raise", &image).await;
        match h.platform.invoke(&f, &json!({})).await {
            Err(InvokeError::Function {
                status: 500,
                answer,
                ..
            }) => {
                assert_eq!(answer.exception_type.as_deref(), Some("RangeError"));
                assert_eq!(answer.error, "RangeError: boom");
            }
            other => panic!("expected a handler error, got {other:?}"),
        }
        h.platform.stop(&f).await.unwrap();
        let f = h.deploy_nodejs(&fixtures(), "030.timeout", &image).await;
        match h.platform.invoke(&f, &json!({"sleep": 5})).await {
            Err(InvokeError::Function { status: 504, .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        let quick = h.platform.invoke(&f, &json!({"sleep": 0})).await.unwrap();
        assert_eq!(
            quick.handler_output(),
            Some(&json!({"result": "woke up after the timeout"}))
        );
    })
    .await;
}

async fn nodejs_data_files_and_npm_dependencies() {
    with_harness(|h| async move {
        let image = h.nodejs_image().await;
        let f = h.deploy_nodejs(&fixtures(), "040.data-file", &image).await;
        let r = h.platform.invoke(&f, &json!({})).await.unwrap();
        assert_eq!(
            r.handler_output(),
            Some(&json!({"greeting": "hello from a data file\n"}))
        );
        h.platform.stop(&f).await.unwrap();

        // mustache comes from npm, installed in a build container of the same image.
        let f = h.deploy_nodejs(&fixtures(), "110.template", &image).await;
        let r = h
            .platform
            .invoke(&f, &json!({"username": "testname", "random_len": 7}))
            .await
            .unwrap();
        let html = r
            .handler_output()
            .and_then(|o| o["result"].as_str())
            .unwrap_or_default();
        assert!(html.contains("<h1>Welcome testname!</h1>"), "{html}");
        assert_eq!(html.matches("<li>").count(), 7, "{html}");
    })
    .await;
}
