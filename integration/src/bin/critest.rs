//! The critest tier (`scripts/critest.sh SHIM_DIR` runs it): cri-tools'
//! critest against a private containerd's CRI plugin with handler `runsc`
//! (our shim from `RUNSC_SHIM_DIR`; containerd and runsc from `PATH`).
//! Prints pass/fail counts; exits 1 on a failure the expected-failures
//! list does not name, or on anything left behind.
//!
//! Usage: critest --critest PATH [--expected FILE] [--out DIR]
//!        [--focus REGEX] [--limit SECONDS] [--handler runsc|runc]
//!
//! `--handler runc` runs the same specs on runc, to tell what fails under
//! gVisor from what fails anyway. [--handler NAME]

use std::{path::PathBuf, process::ExitCode, time::Duration};

use integration::critest::{run, Options};

fn usage() -> ExitCode {
    eprintln!(
        "usage: critest --critest PATH [--expected FILE] [--out DIR] [--focus REGEX] [--limit SECONDS] [--handler NAME]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    test_support::abort::clean_up_on_panic();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut opts = Options {
        critest: PathBuf::from("critest"),
        expected: root.join("critest/expected-failures.txt"),
        out_dir: root.join("../target/critest"),
        focus: None,
        limit: Duration::from_secs(600),
        handler: integration::cri::HANDLER.to_string(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else {
            return usage();
        };
        match a.as_str() {
            "--critest" => opts.critest = v.into(),
            "--expected" => opts.expected = v.into(),
            "--out" => opts.out_dir = v.into(),
            "--focus" => opts.focus = Some(v),
            "--handler" => opts.handler = v,
            "--limit" => match v.parse() {
                Ok(s) => opts.limit = Duration::from_secs(s),
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    match std::panic::catch_unwind(|| run(&opts)) {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            println!("critest tier: FAILED");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            println!("critest tier: FAILED: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("critest tier: FAILED (panicked, see above)");
            ExitCode::FAILURE
        }
    }
}
