//! The `compose` command line: argument parsing and output only; the work
//! is in the `compose_cli` library and the compose-build, compose-publish and compose-serve crates.

mod cli;

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The chroot helper must stay single-threaded until it forks: dispatch
    // before anything else runs.
    if args
        .get(1)
        .is_some_and(|a| a == compose_build::chroot::HELPER_VERB)
    {
        compose_build::chroot::helper_main(&args[2..]);
    }
    cli::main()
}
