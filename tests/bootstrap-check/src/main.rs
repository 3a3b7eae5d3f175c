//! `bootstrap-check [--max-mib N] <bootstrap>...`: checks Lambda bootstraps (arm64, at most N MiB,
//! Lambda's 250 MB by default, no glibc newer than 2.34), printing one line each; exits 1 naming
//! every one that fails, 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use bootstrap_check::{check, LAMBDA_UNZIPPED_BYTES};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut max_bytes = LAMBDA_UNZIPPED_BYTES;
    let mut paths = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--max-mib" {
            match args.next().and_then(|n| n.parse::<u64>().ok()) {
                Some(mib) => max_bytes = mib * 1024 * 1024,
                None => return usage("--max-mib takes a whole number of MiB"),
            }
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    if paths.is_empty() {
        return usage("name at least one bootstrap");
    }
    let mut failed = false;
    for path in paths {
        match check(&path, max_bytes) {
            Ok(bootstrap) => println!("{}: {bootstrap}", path.display()),
            Err(why) => {
                eprintln!("bootstrap-check: {why}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("bootstrap-check: {why}\nusage: bootstrap-check [--max-mib N] <bootstrap>...");
    ExitCode::from(2)
}
