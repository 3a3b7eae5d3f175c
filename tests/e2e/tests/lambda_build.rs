//! CI's Lambda build (`make lambda-check`, which `make test` runs first): the seven functions
//! cross-compiled for arm64 and linked against AL2023's glibc, unoptimised, and `sam build`'s copies
//! of them. The shipping build (`make lambda`, `make sam-build`) is checked by the same
//! `bootstrap_check::check`, against its size budget, each time it is built.

use std::path::{Path, PathBuf};

use bootstrap_check::{check, AL2023_GLIBC, LAMBDA_UNZIPPED_BYTES};
use session_archiver::ServiceId;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_bootstrap_is_an_arm64_binary_within_lambda_limits_needing_at_most_glibc_2_34() {
    let sessions =
        ServiceId::ALL.map(|service| (service.as_str(), format!("{}Function", archiver_e2e::pascal_case(service))));
    let others = [
        ("scope-planner", "ScopePlannerFunction".to_owned()),
        ("history-compactor", "HistoryCompactorFunction".to_owned()),
    ];
    let out = root().join("target/lambda-check");
    for (name, logical) in sessions.into_iter().chain(others) {
        for path in [out.join(name).join("bootstrap"), out.join("sam").join(&logical).join("bootstrap")] {
            // GIVEN the bootstrap `make lambda-check` and its `sam build` left
            assert!(path.exists(), "{}: missing: run `make lambda-check` (make test does)", path.display());
            // WHEN its header, version needs and size are read
            let bootstrap = check(&path, LAMBDA_UNZIPPED_BYTES);
            // THEN it is for arm64, fits Lambda and asks for no glibc newer than 2.34
            let bootstrap = bootstrap.unwrap_or_else(|why| panic!("{why}"));
            assert!(bootstrap.newest_glibc <= AL2023_GLIBC);
        }
    }
}
