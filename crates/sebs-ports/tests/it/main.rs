//! Tests of the allocator that need something of the host beyond a temporary directory:
//! IPv6, util-linux `flock(1)`, root. The others are unit tests (`src/allocator/tests.rs`).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;

use sebs_ports::{Allocator, AllocatorConfig, PortError, PortRange};
use sebs_testkit::{trial, Trial, FLOCK, IPV6, ROOT};

sebs_testkit::main!(trials());

/// The tests of this binary, each with what it needs from the machine.
fn trials() -> Vec<Trial> {
    vec![
        trial!(listening_ports_on_ipv4_addresses_are_skipped),
        trial!(listening_ports_on_the_ipv6_wildcard_are_skipped, IPV6),
        trial!(
            a_lock_held_by_another_process_is_respected_until_it_dies,
            FLOCK
        ),
        trial!(a_lock_dir_of_another_user_is_refused, ROOT),
    ]
}

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

fn lock_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Binds a listener on `bind` (port 0), and checks that its port is passed over while a free
/// port next to it is taken. Everything between the two is declared held.
fn check_listener_skipped(bind: &str) {
    let busy = TcpListener::bind(bind).unwrap_or_else(|e| panic!("cannot bind {bind}: {e}"));
    let busy_port = busy.local_addr().unwrap().port();
    let free = free_port();
    let range = PortRange::new(busy_port.min(free), busy_port.max(free)).unwrap();
    let held: BTreeSet<u16> = range
        .ports()
        .filter(|p| *p != busy_port && *p != free)
        .collect();
    let (_dir, alloc) = temp_allocator(range);
    let lease = alloc.allocate(&held).unwrap();
    assert_eq!(lease.port(), free, "listener on {bind}");
    // The probe left no lock file behind for the busy port.
    assert_eq!(
        lock_files(&alloc.config().lock_dir),
        vec![format!("{free}.lock")]
    );
    drop(busy);
}

fn listening_ports_on_ipv4_addresses_are_skipped() {
    check_listener_skipped("127.0.0.1:0");
    // The wildcard conflicts with 127.0.0.1.
    check_listener_skipped("0.0.0.0:0");
}

fn listening_ports_on_the_ipv6_wildcard_are_skipped() {
    // A dual-stack IPv6 wildcard conflicts with 127.0.0.1 too.
    check_listener_skipped("[::]:0");
}

/// Another process holds a port's lock (taken by util-linux `flock(1)`, which uses the same
/// `flock(2)` lock, on a descriptor of the shell that then becomes `sleep`): we pass over the
/// port; once that process is killed, its lock is gone and the port is ours.
fn a_lock_held_by_another_process_is_respected_until_it_dies() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let port = free_port();
    let (_dir, alloc) = temp_allocator(PortRange::new(port, port).unwrap());
    let path = alloc.lock_path(port);
    let mut child = Command::new("sh")
        .args([
            "-c",
            r#"exec 9>"$1" && flock -n 9 && echo locked && exec sleep 60"#,
            "sh",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line,
        "locked\n",
        "flock(1) could not lock {}",
        path.display()
    );

    let while_held = alloc.allocate(&BTreeSet::new());
    child.kill().unwrap();
    child.wait().unwrap();
    match while_held {
        Err(PortError::Exhausted { skipped, .. }) => assert_eq!(skipped.allocating, 1),
        other => panic!("expected exhaustion, got {other:?}"),
    }
    assert_eq!(alloc.allocate(&BTreeSet::new()).unwrap().port(), port);
}

/// Only root can give a directory away, so only root can make one of another user's.
fn a_lock_dir_of_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    let stranger = 4242;
    std::os::unix::fs::chown(&foreign, Some(stranger), None).unwrap();
    let uid = nix::unistd::geteuid().as_raw();
    for lock_dir in [foreign.clone(), foreign.join("ports")] {
        let err = Allocator::new(AllocatorConfig::new(&lock_dir)).unwrap_err();
        match err {
            PortError::ForeignDir {
                path,
                owner,
                uid: ours,
            } => {
                assert_eq!((path, owner, ours), (foreign.clone(), stranger, uid))
            }
            other => panic!(
                "{}: expected a foreign directory, got {other}",
                lock_dir.display()
            ),
        }
    }
}
