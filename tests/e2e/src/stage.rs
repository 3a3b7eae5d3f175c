//! The whole local stage: moto with the table and bucket, the emulator seeded from
//! `events/local-world.json`, and the real function binaries wired to both. Used by the tests,
//! `make demo` and `make invoke`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use session_archiver::ServiceId;
use session_emulator::{Emulator, EmulatorConfig};

use crate::lambda::LocalFunction;
use crate::{LocalAws, MotoServer};

pub const TABLE: &str = "session-archiver-sessions";
pub const BUCKET: &str = "session-archiver-history";
pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "us-east-1";
/// The secret holding the personal-data key, as the template names it.
pub const KEY_SECRET: &str = "session-archiver/personal-data-key";
/// The local key: 64 characters, like the template's generated one.
pub const LOCAL_KEY: &str = "local-personal-data-key-0123456789abcdef0123456789abcdef01234567";

/// The repository's `events/` folder.
pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

pub fn read_json(path: &Path) -> std::io::Result<Json> {
    let text =
        std::fs::read_to_string(path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// The seeded account of `events/local-world.json`.
pub fn local_world() -> std::io::Result<EmulatorConfig> {
    let json = read_json(&events_dir().join("local-world.json"))?;
    serde_json::from_value(json).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

pub struct LocalStage {
    pub emulator: Emulator,
    pub aws: LocalAws,
    pub moto: MotoServer,
}

impl LocalStage {
    pub async fn start(world: EmulatorConfig) -> std::io::Result<Self> {
        let moto = MotoServer::start()?;
        let aws = LocalAws::create(&moto.url(), TABLE, BUCKET).await;
        let emulator = Emulator::start(world).await?;
        create_key_secret(&aws).await?;
        Ok(LocalStage { emulator, aws, moto })
    }

    /// A function's environment on this stage.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("TABLE_NAME", TABLE.to_owned()),
            ("BUCKET_NAME", BUCKET.to_owned()),
            ("SESSION_API_ENDPOINT_URL", self.emulator.url()),
            ("STORAGE_ENDPOINT_URL", self.moto.url()),
            ("AWS_ACCESS_KEY_ID", "AKIDLOCALSTANDIN".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "local-stand-in-secret".to_owned()),
            ("MAX_CALLS_PER_SECOND", "0".to_owned()),
            ("PERSONAL_DATA_KEY_SECRET", KEY_SECRET.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Starts the function binary of `service` on this stage.
    pub async fn function(&self, service: ServiceId) -> std::io::Result<LocalFunction> {
        start_function(service, &self.function_env(), Duration::from_secs(120)).await
    }
}

impl LocalStage {
    /// Starts the compactor binary on this stage, its sort spilling after `sort_memory_mb` MiB.
    pub async fn compactor(&self, sort_memory_mb: u32, extra_env: &[(&str, String)]) -> std::io::Result<LocalFunction> {
        let mut env = compactor_env(&self.moto.url(), extra_env);
        env.push(("COMPACTION_SORT_MEMORY_MB".into(), sort_memory_mb.to_string()));
        let name = "history-compactor";
        LocalFunction::start(&LocalFunction::binary(name), name, ACCOUNT_ID, REGION, &env, Duration::from_secs(300))
            .await
    }
}

/// The compactor's environment on moto at `moto_url`, with `extra_env`.
pub fn compactor_env(moto_url: &str, extra_env: &[(&str, String)]) -> Vec<(String, String)> {
    [
        ("BUCKET_NAME", BUCKET.to_owned()),
        ("STORAGE_ENDPOINT_URL", moto_url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDLOCALSTANDIN".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local-stand-in-secret".to_owned()),
    ]
    .iter()
    .chain(extra_env)
    .map(|(k, v)| ((*k).to_owned(), v.clone()))
    .collect()
}

/// The personal-data key's secret, as the template creates it.
pub async fn create_key_secret(aws: &LocalAws) -> std::io::Result<()> {
    let secrets = aws_sdk_secretsmanager::Client::new(&aws.settings.load().await);
    secrets
        .create_secret()
        .name(KEY_SECRET)
        .secret_string(LOCAL_KEY)
        .send()
        .await
        .map_err(|e| std::io::Error::other(format!("create the personal-data key secret: {e}")))?;
    Ok(())
}

/// Starts the function binary of `service` with exactly `env` and a Lambda timeout.
pub async fn start_function(
    service: ServiceId,
    env: &[(String, String)],
    timeout: Duration,
) -> std::io::Result<LocalFunction> {
    let name = service.as_str();
    LocalFunction::start(&LocalFunction::binary(name), name, ACCOUNT_ID, REGION, env, timeout).await
}
