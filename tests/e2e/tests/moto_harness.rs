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
