//! A function container on the second engine, which sees none of this host's files: its
//! image is copied there without a registry, the code and the agent are built into a
//! per-package image there, nothing is bind-mounted, and it answers from this host on a
//! port published on the engine's own address.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sebs_container::testing::{unique_name, TEST_LABEL};
use sebs_container::transfer::{build_function_image, copy_image, remove_image, FunctionImage};
use sebs_container::{create_and_start, inspect, remove_labelled, wait_alive, Delivery, Docker};
use sebs_testkit::{trial, Trial, ENGINE, ENGINE2};

use crate::support::{Fixture, CASE_LABEL};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![trial!(
        a_function_runs_on_an_engine_that_cannot_see_its_files,
        ENGINE,
        ENGINE2
    )]
}

async fn a_function_runs_on_an_engine_that_cannot_see_its_files() {
    let (d1, d2) = (sebs_testkit::docker().await, sebs_testkit::docker2().await);
    let base = sebs_testkit::python_image(&d1).await;
    let fx = Arc::new(Fixture::new("remote", base));
    let tag = format!("sebs-local-test/function:{}", unique_name("remote"));
    let outcome = tokio::spawn(on_the_second_engine(
        d1,
        d2.clone(),
        fx.clone(),
        tag.clone(),
    ))
    .await;
    let engine = sebs_testkit::engine2_address().unwrap().to_string();
    let removed = remove_labelled(&d2, (CASE_LABEL, &fx.case)).await;
    let image_removed = remove_image(&d2, &engine, &tag).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    removed.unwrap();
    image_removed.unwrap();
}

async fn on_the_second_engine(d1: Docker, d2: Docker, fx: Arc<Fixture>, tag: String) {
    let address = sebs_testkit::engine2_address().unwrap();
    let Some(host) = address.tcp_host() else {
        panic!("the second engine is reached over TCP: {address}");
    };
    let engine_ip: IpAddr = host.rsplit_once(':').unwrap().0.parse().unwrap();
    let engine = address.to_string();

    // The base image, moved with its progress (a load of an image already there changes
    // nothing, so the test may run again on the same engine).
    let seen = AtomicU64::new(0);
    let moved = copy_image(&d1, &d2, &engine, &fx.image, &|n| {
        seen.store(n, Ordering::SeqCst)
    })
    .await
    .unwrap();
    assert!(moved > 1 << 20, "{moved} bytes");
    assert_eq!(seen.load(Ordering::SeqCst), moved);
    assert!(sebs_container::image::image_exists(&d2, &fx.image)
        .await
        .unwrap());

    let labels = [TEST_LABEL, (CASE_LABEL, fx.case.as_str())];
    let image = FunctionImage {
        tag: &tag,
        base: &fx.image,
        code_dir: &fx.code_dir,
        agent_binary: &fx.serve,
        labels: &labels,
    };
    build_function_image(&d2, &engine, &image).await.unwrap();

    // Mounted, the code and the agent are not there: the engine cannot see them.
    let mut spec = fx.spec("remote", &fx.serve);
    spec.image = tag.clone();
    spec.publish = Some(SocketAddr::new(engine_ip, 0));
    let mounted = create_and_start(&d2, &spec).await;
    assert!(
        mounted.is_err(),
        "a bind mount of this host's files started"
    );

    spec.delivery = Delivery::Image;
    spec.name = unique_name("sebs-it-remote-image");
    let started = create_and_start(&d2, &spec).await.unwrap();
    assert_eq!(started.address.ip(), engine_ip, "{started:?}");
    assert_ne!(started.address.port(), 0);
    wait_alive(&d2, &started.id, started.address, Duration::from_secs(60))
        .await
        .unwrap();
    let info = inspect(&d2, &started.id).await.unwrap();
    let mounts = info.mounts.unwrap_or_default();
    assert!(
        mounts.iter().all(|m| m.typ.as_deref() != Some("bind")),
        "{mounts:?}"
    );
    // The first engine has no such image: it was built on the second.
    assert!(!sebs_container::image::image_exists(&d1, &tag)
        .await
        .unwrap());
}
