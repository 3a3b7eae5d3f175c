//! Runs the session API emulator standalone: `session-emulator --port 4566 --config seed.json`.

use std::net::SocketAddr;

use session_emulator::{Emulator, EmulatorConfig};

fn usage() -> ! {
    eprintln!("usage: session-emulator [--port PORT] [--config FILE.json]");
    eprintln!("  Serves WorkSpaces, IVS, Chime SDK Voice and GameLift Streams session APIs on 127.0.0.1.");
    eprintln!("  Prints `listening on http://127.0.0.1:PORT` once it accepts connections.");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let mut config = EmulatorConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage());
            }
            "--config" => {
                let path = args.next().unwrap_or_else(|| usage());
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                    eprintln!("cannot read {path}: {e}");
                    std::process::exit(2)
                });
                config = serde_json::from_str(&text).unwrap_or_else(|e| {
                    eprintln!("{path} is not an emulator config: {e}");
                    std::process::exit(2)
                });
            }
            _ => usage(),
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let emulator = Emulator::start_on(config, addr).await.unwrap_or_else(|e| {
        eprintln!("cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    println!("listening on {}", emulator.url());
    let _ = tokio::signal::ctrl_c().await;
}
