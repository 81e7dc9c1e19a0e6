//! `sebs-store`: serves one embedded store (S3 or DynamoDB), or relays to one, until SIGTERM
//! or SIGINT.

use std::process::ExitCode;

fn main() -> ExitCode {
    sebs_store::cli::main(std::env::args_os(), |k| std::env::var(k).ok())
}
