//! `sebs-local report DIR`: the HTML report (and each plot as an SVG file) of a results
//! directory; `experiment perf-cost` and `stop` write it through [`write`] as well.

use std::path::{Path, PathBuf};

use sebs_report::{ReadError, ReportError, Written};

use crate::exit::{Exit, ExitContext, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A results directory: perf-cost's `--output-dir` (or its `perf-cost/`), or where `stop`
    /// wrote `memory_report.json`. The report is written beside the results.
    pub dir: PathBuf,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let written = write(&args.dir, &[])?;
    println!("{}", written.html.display());
    Ok(Exit::Ok)
}

/// Writes the report of `dir` (with `memory_reports`, whatever their names) and says what it
/// wrote on stderr. A directory that does not exist or holds no results is the user's
/// mistake (exit 2); failing to read or write files that are there is the environment's
/// (exit 3).
pub fn write(dir: &Path, memory_reports: &[PathBuf]) -> Result<Written, Failure> {
    let result = sebs_report::write_report_with(dir, memory_reports);
    let exit = match &result {
        Err(ReportError::Read(ReadError::NoResults { .. })) => Exit::BadInput,
        Err(ReportError::Read(ReadError::List { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Exit::BadInput
        }
        _ => Exit::Environment,
    };
    let written = result.exit(exit, "failed to write the report")?;
    for note in &written.notes {
        tracing::warn!("{note}");
    }
    for plot in &written.plots {
        eprintln!("wrote {}", plot.display());
    }
    eprintln!("wrote {} (open it in a browser)", written.html.display());
    Ok(written)
}
