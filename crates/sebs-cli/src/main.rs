//! `sebs-local`: the command-line face of the local platform; the work is in `sebs_cli`.

fn main() -> std::process::ExitCode {
    sebs_cli::main()
}
