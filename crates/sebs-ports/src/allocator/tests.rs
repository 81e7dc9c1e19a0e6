//! Tests of the allocator against real lock files in a temporary directory and real sockets.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Arc, Barrier};

use super::*;

fn temp_allocator(range: PortRange) -> (tempfile::TempDir, Allocator) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AllocatorConfig::new(dir.path().join("ports"));
    config.range = range;
    let allocator = Allocator::new(config).unwrap();
    (dir, allocator)
}

/// A port that was free a moment ago, from the kernel's ephemeral range.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn single(port: u16) -> PortRange {
    PortRange::new(port, port).unwrap()
}

fn lock_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn default_lock_dir_follows_xdg_or_falls_back_to_tmp() {
    fn check(xdg: Option<&str>, uid: u32, expect: &str) {
        assert_eq!(
            default_lock_dir(xdg.map(OsStr::new), uid),
            PathBuf::from(expect),
            "{xdg:?}"
        );
    }
    check(
        Some("/run/user/1000"),
        1000,
        "/run/user/1000/sebs-local/ports",
    );
    check(None, 1000, "/tmp/sebs-local-1000/ports");
    check(Some(""), 0, "/tmp/sebs-local-0/ports");
    check(Some("relative/dir"), 42, "/tmp/sebs-local-42/ports");
}

#[test]
fn lease_locks_a_file_and_release_removes_it() {
    let port = free_port();
    let (_dir, alloc) = temp_allocator(single(port));
    let lease = alloc.allocate(&BTreeSet::new()).unwrap();
    assert_eq!(lease.port(), port);
    assert_eq!(lease.path(), alloc.lock_path(port));
    assert!(lease.path().exists());
    // While the lease lives, the same port cannot be had again.
    match alloc.allocate(&BTreeSet::new()) {
        Err(PortError::Exhausted { skipped, .. }) => assert_eq!(skipped.allocating, 1),
        other => panic!("expected exhaustion, got {other:?}"),
    }
    lease.release().unwrap();
    assert_eq!(lock_files(&alloc.config().lock_dir), Vec::<String>::new());
    assert_eq!(alloc.allocate(&BTreeSet::new()).unwrap().port(), port);
}

#[test]
fn dropping_a_lease_releases_it() {
    let port = free_port();
    let (_dir, alloc) = temp_allocator(single(port));
    drop(alloc.allocate(&BTreeSet::new()).unwrap());
    assert_eq!(lock_files(&alloc.config().lock_dir), Vec::<String>::new());
    assert_eq!(alloc.allocate(&BTreeSet::new()).unwrap().port(), port);
}

#[test]
fn a_lone_listening_port_counts_as_in_use() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (_dir, alloc) = temp_allocator(single(port));
    match alloc.allocate(&BTreeSet::new()) {
        Err(PortError::Exhausted { skipped, .. }) => assert_eq!(
            skipped,
            Skipped {
                in_use: 1,
                ..Skipped::default()
            }
        ),
        other => panic!("expected exhaustion, got {other:?}"),
    }
}

#[test]
fn exhaustion_names_the_range_and_the_reasons() {
    let (_dir, alloc) = temp_allocator(PortRange::new(9000, 9002).unwrap());
    let held: BTreeSet<u16> = [9000, 9001, 9002].into();
    let err = alloc.allocate(&held).unwrap_err();
    assert_eq!(
        err.to_string(),
        "find a free port in 9000-9002: all 3 ports are taken (3 held by our functions, \
         0 being allocated, 0 persisted for containers, 0 in use on the host)"
    );
}

#[test]
fn parallel_allocators_never_share_a_port() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    // A range in the middle of nowhere on this host; ports in use in it are skipped anyway.
    let range = PortRange::new(47000, 47199).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let mut config = AllocatorConfig::new(dir.path().join("ports"));
            config.range = range;
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                // Each thread has its own allocator, as separate processes would.
                let alloc = Allocator::new(config).unwrap();
                barrier.wait();
                (0..PER_THREAD)
                    .map(|_| alloc.allocate(&BTreeSet::new()).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let leases: Vec<PortLease> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let ports: BTreeSet<u16> = leases.iter().map(PortLease::port).collect();
    assert_eq!(
        ports.len(),
        THREADS * PER_THREAD,
        "a port was handed out twice: {ports:?}"
    );
    assert!(ports.iter().all(|p| range.contains(*p)));
}

#[test]
fn persisted_leases_survive_and_stale_ones_are_reclaimed() {
    let port = free_port();
    let (_dir, alloc) = temp_allocator(single(port));
    let persisted = alloc
        .allocate(&BTreeSet::new())
        .unwrap()
        .persist("c0ffee")
        .unwrap();
    let expected = PersistedPort {
        port,
        container: "c0ffee".to_owned(),
    };
    assert_eq!(persisted, expected);
    assert_eq!(
        fs::read_to_string(alloc.lock_path(port)).unwrap(),
        "c0ffee\n"
    );
    assert_eq!(alloc.persisted().unwrap(), vec![expected.clone()]);

    // Persisted: another allocation passes over it.
    match alloc.allocate(&BTreeSet::new()) {
        Err(PortError::Exhausted { skipped, .. }) => assert_eq!(skipped.persisted, 1),
        other => panic!("expected exhaustion, got {other:?}"),
    }
    // Alive containers keep their ports.
    assert_eq!(alloc.reclaim_stale(|_| true).unwrap(), vec![]);
    assert_eq!(alloc.persisted().unwrap(), vec![expected.clone()]);
    // A gone container loses it.
    assert_eq!(
        alloc.reclaim_stale(|id| id != "c0ffee").unwrap(),
        vec![expected]
    );
    assert_eq!(alloc.persisted().unwrap(), vec![]);
    assert_eq!(alloc.allocate(&BTreeSet::new()).unwrap().port(), port);
}

#[test]
fn release_persisted_only_frees_the_owner_s_port() {
    let port = free_port();
    let (_dir, alloc) = temp_allocator(single(port));
    alloc
        .allocate(&BTreeSet::new())
        .unwrap()
        .persist("owner")
        .unwrap();
    assert!(!alloc.release_persisted(port, "someone-else").unwrap());
    assert!(alloc.lock_path(port).exists());
    assert!(alloc.release_persisted(port, "owner").unwrap());
    assert!(!alloc.lock_path(port).exists());
    assert!(!alloc.release_persisted(port, "owner").unwrap());
}

#[test]
fn orphans_of_dead_allocations_are_reused_and_reclaimed() {
    let port = free_port();
    let (_dir, alloc) = temp_allocator(single(port));
    // What a process killed between allocate and persist leaves: an empty, unlocked file
    // (the kernel drops a dead process's flock).
    fs::write(alloc.lock_path(port), "").unwrap();
    let lease = alloc.allocate(&BTreeSet::new()).unwrap();
    assert_eq!(lease.port(), port);
    // A live lease is not reclaimed, although its file is empty too.
    assert_eq!(alloc.reclaim_stale(|_| false).unwrap(), vec![]);
    assert!(lease.path().exists());
    lease.release().unwrap();

    fs::write(alloc.lock_path(port), "").unwrap();
    // Orphans are removed, but not reported: they name no container.
    assert_eq!(alloc.reclaim_stale(|_| false).unwrap(), vec![]);
    assert!(
        !alloc.lock_path(port).exists(),
        "the orphan was not removed"
    );
}

#[test]
fn other_files_in_the_lock_dir_are_ignored() {
    let (_dir, alloc) = temp_allocator(single(free_port()));
    for name in ["README", "70000.lock", "x.lock", "9000.lock.tmp"] {
        fs::write(alloc.config().lock_dir.join(name), "abc\n").unwrap();
    }
    assert_eq!(alloc.reclaim_stale(|_| false).unwrap(), vec![]);
    assert_eq!(alloc.persisted().unwrap(), vec![]);
    assert_eq!(lock_files(&alloc.config().lock_dir).len(), 4);
}

#[test]
fn bad_container_ids_are_refused_and_the_lease_released() {
    let port = free_port();
    let (_dir, alloc) = temp_allocator(single(port));
    for id in ["", "two words", "line\nbreak"] {
        let err = alloc
            .allocate(&BTreeSet::new())
            .unwrap()
            .persist(id)
            .unwrap_err();
        assert!(
            matches!(err, PortError::InvalidContainer { .. }),
            "{id:?}: {err}"
        );
        assert!(!alloc.lock_path(port).exists(), "{id:?}");
    }
}

#[test]
fn unusable_lock_dirs_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let check = |lock_dir: &Path, expect: String| {
        let err = Allocator::new(AllocatorConfig::new(lock_dir)).unwrap_err();
        assert_eq!(err.to_string(), expect);
    };
    let show = |p: &Path| p.display().to_string();
    check(&file, format!("create port lock directory {}", show(&file)));
    check(
        &file.join("ports"),
        format!("create port lock directory {}", show(&file.join("ports"))),
    );
    check(
        &link,
        format!(
            "use port lock directory {}: it is not a plain directory",
            show(&link)
        ),
    );
}

#[test]
fn a_host_address_we_do_not_have_is_an_error_naming_it() {
    let (_dir, mut alloc) = temp_allocator(single(free_port()));
    // TEST-NET-1 is never assigned to a local interface.
    alloc.config.host = Ipv4Addr::new(192, 0, 2, 1);
    let err = alloc.allocate(&BTreeSet::new()).unwrap_err();
    assert!(err.to_string().starts_with("probe port "), "{err}");
    assert!(err.to_string().ends_with(" on 192.0.2.1"), "{err}");
}
