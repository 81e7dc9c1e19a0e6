//! Running the trials on `libtest-mimic`: the gate, the report of what did not run, and the
//! binary's stderr kept in a log file.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;

use libtest_mimic::{Arguments, Completion, Failed};

use crate::{Need, Trial};

/// Set to a true value by `cargo xtask test`: every trial must run.
pub const REQUIRE_ALL: &str = "SEBS_TESTS_REQUIRE_ALL";

/// Why every trial must run here, if it must: `SEBS_TESTS_REQUIRE_ALL` or `CI` set to a true
/// value (`true`, `1` or `yes`, in any case). `CI=false`, `CI=0` or an empty `CI` are unset.
pub fn strict() -> Option<String> {
    strict_from(|name| std::env::var(name).ok())
}

fn strict_from(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    [REQUIRE_ALL, "CI"].into_iter().find_map(|name| {
        let value = var(name)?;
        is_true(&value).then(|| format!("{name}={value}"))
    })
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes"
    )
}

/// What the run saw besides passes: trials that did not run, by need, and trials that failed.
struct Report {
    /// Need → (why not, the trials that needed it).
    not_run: Mutex<BTreeMap<&'static str, (String, Vec<String>)>>,
    failed: Mutex<Vec<String>>,
}

static REPORT: Report = Report {
    not_run: Mutex::new(BTreeMap::new()),
    failed: Mutex::new(Vec::new()),
};

impl Report {
    fn not_run(&self, need: &Need, reason: &str, trial: &str) {
        let mut not_run = self.not_run.lock().unwrap_or_else(|e| e.into_inner());
        let entry = not_run
            .entry(need.what())
            .or_insert_with(|| (reason.to_string(), Vec::new()));
        entry.1.push(trial.to_string());
    }

    fn failed(&self, trial: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.push(trial.to_string());
    }
}

/// Runs `trials` as the test binary `binary` (its stderr log goes to `log_dir`), with the
/// command line's libtest arguments, and returns the exit code.
pub fn run(binary: &str, log_dir: &Path, trials: Vec<Trial>) -> ExitCode {
    let args = Arguments::from_args();
    let strict = strict();
    let mut log = None;
    if !args.nocapture && !args.list {
        let path = log_dir.join(format!("{binary}.log"));
        match capture_stderr(&path) {
            Ok(()) => log = Some(path),
            Err(e) => println!("note: stderr stays on the terminal: {e}"),
        }
    }
    remember_panic_locations();
    let trials = trials
        .into_iter()
        .map(|t| gate(t, strict.clone()))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    print!("{}", not_run_note(strict.is_some()));
    if let Some(path) = log {
        print!("{}", failed_stretches(&path));
        println!(
            "the tests' stderr is in {} (`-- --nocapture` shows it live)\n",
            path.display()
        );
    }
    conclusion.exit_code()
}

/// The libtest-mimic trial of `trial`: ignored (or, when `strict`, failed) with the reason
/// when one of its needs is not met here, else its body, a panic being its failure.
fn gate(trial: Trial, strict: Option<String>) -> libtest_mimic::Trial {
    let Trial { name, needs, body } = trial;
    libtest_mimic::Trial::ignorable_test(name.clone(), move || {
        for need in needs {
            if let Err(reason) = need.verdict() {
                let what = need.what();
                if let Some(strict) = strict {
                    return Err(format!(
                        "{strict}: every test must run, but this one needs {what}: {reason}"
                    )
                    .into());
                }
                REPORT.not_run(need, reason, &name);
                return Ok(Completion::ignored_with(format!("needs {what}")));
            }
        }
        eprintln!("{}", marker(&name, "started"));
        LOCATION.with(|l| l.borrow_mut().take());
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(()) => {
                eprintln!("{}", marker(&name, "passed"));
                Ok(Completion::Completed)
            }
            Err(payload) => {
                eprintln!("{}", marker(&name, "FAILED"));
                REPORT.failed(&name);
                Err(Failed::from(panic_message(payload.as_ref())))
            }
        }
    })
}

fn marker(trial: &str, what: &str) -> String {
    format!("==== {trial} {what}")
}

thread_local! {
    /// Where the last panic on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps the default panic message (it goes to stderr, so to the log) and remembers where
/// each panic happened, for the failure's message.
fn remember_panic_locations() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| l.to_string());
        LOCATION.with(|l| *l.borrow_mut() = location);
        default(info);
    }));
}

/// "panicked at file:line:col: message". A panic passed on from another thread (a spawned
/// task's, resumed here) has its message but not its location.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    match LOCATION.with(|l| l.borrow_mut().take()) {
        Some(at) => format!("panicked at {at}:\n{message}"),
        None => format!("panicked:\n{message}"),
    }
}

/// Sends this process's stderr (and its children's) to a new file at `path`.
fn capture_stderr(path: &Path) -> Result<(), String> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
    let file = std::fs::File::create(path)
        .map_err(|e| format!("failed to create {}: {e}", path.display()))?;
    nix::unistd::dup2_stderr(&file)
        .map_err(|e| format!("failed to send stderr to {}: {e}", path.display()))
}

/// The trials that did not run, grouped by what they needed, with the reason once each.
fn not_run_note(strict: bool) -> String {
    let not_run = REPORT.not_run.lock().unwrap_or_else(|e| e.into_inner());
    if not_run.is_empty() {
        return String::new();
    }
    let total: usize = not_run.values().map(|(_, trials)| trials.len()).sum();
    let mut note = format!(
        "{total} {} did not run here (counted as ignored above):\n",
        plural(total, "test", "tests")
    );
    for (what, (reason, trials)) in not_run.iter() {
        let n = trials.len();
        let _ = writeln!(
            note,
            "  {n} {} {what}: {reason}",
            plural(n, "needs", "need")
        );
    }
    if !strict {
        let _ = writeln!(
            note,
            "set CI=true or {REQUIRE_ALL}=1 (as `cargo xtask test` does) to make this a failure\n"
        );
    }
    note
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// At most this many lines of the log are printed for each failed trial.
const STRETCH_LINES: usize = 200;

/// For each failed trial, what the binary wrote to stderr while it ran (other trials that
/// ran at the same time included).
fn failed_stretches(log: &Path) -> String {
    let failed = REPORT.failed.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_empty() {
        return String::new();
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for trial in failed.iter() {
        let (start, end) = (marker(trial, "started"), marker(trial, "FAILED"));
        let from = lines.iter().position(|l| *l == start).unwrap_or(0);
        let to = lines
            .iter()
            .rposition(|l| *l == end)
            .map_or(lines.len(), |i| i + 1);
        let stretch = &lines[from..to.max(from)];
        let shown = &stretch[stretch.len().saturating_sub(STRETCH_LINES)..];
        let _ = writeln!(
            out,
            "---- stderr while {trial} ran ({} of {} lines) ----",
            shown.len(),
            stretch.len()
        );
        for line in shown {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_true_values_make_the_run_strict() {
        let check = |vars: &[(&str, &str)], expect: Option<&str>| {
            let got = strict_from(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            });
            assert_eq!(got.as_deref(), expect, "{vars:?}");
        };
        check(&[], None);
        check(&[("CI", "true")], Some("CI=true"));
        check(&[("CI", "TRUE")], Some("CI=TRUE"));
        check(&[("CI", "1")], Some("CI=1"));
        check(&[("CI", "Yes")], Some("CI=Yes"));
        check(&[("CI", "false")], None);
        check(&[("CI", "0")], None);
        check(&[("CI", "")], None);
        check(&[("CI", "no")], None);
        check(
            &[(REQUIRE_ALL, "1"), ("CI", "false")],
            Some("SEBS_TESTS_REQUIRE_ALL=1"),
        );
        check(&[(REQUIRE_ALL, "0"), ("CI", "yes")], Some("CI=yes"));
    }

    #[test]
    fn panic_messages_carry_their_location() {
        LOCATION.with(|l| *l.borrow_mut() = Some("src/x.rs:1:2".to_string()));
        let payload: Box<dyn Any + Send> = Box::new(String::from("boom"));
        assert_eq!(
            panic_message(payload.as_ref()),
            "panicked at src/x.rs:1:2:\nboom"
        );
        let payload: Box<dyn Any + Send> = Box::new("static boom");
        assert_eq!(panic_message(payload.as_ref()), "panicked:\nstatic boom");
    }
}
