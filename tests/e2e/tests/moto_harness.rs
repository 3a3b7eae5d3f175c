//! The moto harness the sink tests stand on: starts on a free port, answers, stops.

use std::net::TcpStream;

use archiver_e2e::MotoServer;

#[test]
fn moto_starts_on_a_free_port_answers_s3_and_stops() {
    // GIVEN the pinned moto server from the project venv
    let mut moto = MotoServer::start().expect("moto server starts");
    // WHEN S3's ListBuckets is asked for, path-style
    let response = moto.get("/").unwrap();
    // THEN it answers as S3 does
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("ListAllMyBucketsResult"), "{response}");
    // AND once stopped, the port is closed
    let port = moto.port();
    moto.stop();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn the_benchmarks_faster_moto_answers_every_request_as_the_pinned_moto_does() {
    // GIVEN the moto server `make bench` runs (the pinned moto with its fast DynamoDB paths)
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-moto-server");
    // WHEN its self-check answers queries (page sizes, start keys, key conditions, filters, reverse
    // order, projections), batch reads, gets and scans over items of every attribute type, with and
    // without the fast paths
    let out = std::process::Command::new(&server).arg("--self-check").output().expect("bench-moto-server runs");
    // THEN every response is the same
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}");
    assert!(report.contains("every response the same"), "{report}");
}

#[test]
fn the_benchmarks_faster_moto_starts_and_answers_as_a_moto_server() {
    // GIVEN the moto server `make bench` runs
    let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-moto-server");
    // WHEN it is started as the pinned one is
    let moto = MotoServer::start_command(&server).expect("bench moto starts");
    // THEN it answers S3 as moto does
    let response = moto.get("/").unwrap();
    assert!(response.contains("ListAllMyBucketsResult"), "{response}");
}
