//! A run on the local stand-ins without Lambda: the emulator, moto with the table and bucket,
//! and the run's settings, with readers of what a user checks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json};
use session_archiver::aws::SdkSettings;
use session_archiver::history::RunId;
use session_archiver::model::Scope;
use session_archiver::run::deadline::Deadlines;
use session_archiver::run::{run, RunConfig, RunRequest, RunSummary, Trigger};
use session_archiver::sources::{AnySource, SessionSource, SourceOptions};
use session_archiver::{Error, ServiceId};
use session_emulator::{Emulator, EmulatorConfig, Shape};

use crate::{api_of, LocalAws, MotoServer};

pub const TABLE: &str = "sessions";
pub const BUCKET: &str = "session-history";

/// An emulator of the session APIs, moto with the table and bucket, and the run's settings.
pub struct Rig {
    pub emulator: Emulator,
    pub aws: LocalAws,
    pub config: RunConfig,
    _moto: MotoServer,
}

impl Rig {
    pub async fn start(emulator: EmulatorConfig) -> Rig {
        let moto = MotoServer::start().expect("moto server starts");
        let aws = LocalAws::create(&moto.url(), TABLE, BUCKET).await;
        let emulator = Emulator::start(emulator).await.unwrap();
        Rig { emulator, aws, config: RunConfig::new(), _moto: moto }
    }

    pub async fn source(&self, service: ServiceId) -> AnySource {
        let sdk = SdkSettings::local(self.emulator.url()).load().await;
        AnySource::new(service, &sdk, SourceOptions::default()).unwrap()
    }

    pub async fn run(&self, service: ServiceId, event_id: &str) -> Result<RunSummary, Error> {
        self.run_on(&self.aws, service, event_id, false).await
    }

    /// A run writing through `aws` (moto itself, or a proxy in front of it).
    pub async fn run_on(
        &self,
        aws: &LocalAws,
        service: ServiceId,
        event_id: &str,
        dry_run: bool,
    ) -> Result<RunSummary, Error> {
        let source = self.source(service).await;
        let (table, objects, request) = (aws.table(), aws.history_bucket(), request(event_id, dry_run));
        // Boxed: a run's future is large in a debug build, and a test thread's stack is 2 MiB.
        Box::pin(run(&self.scope(&source), &source, &table, &objects, &self.config, &request)).await
    }

    /// One invocation of a run that must stop paging `budget` after it starts (its deadline).
    pub async fn run_for(
        &self,
        source: &AnySource,
        event_id: &str,
        budget: std::time::Duration,
    ) -> Result<RunSummary, Error> {
        let deadlines = Deadlines::paging_until(tokio::time::Instant::now() + budget);
        let request = RunRequest { deadlines, ..request(event_id, false) };
        let (table, objects) = (self.aws.table(), self.aws.history_bucket());
        Box::pin(run(&self.scope(source), source, &table, &objects, &self.config, &request)).await
    }

    /// The lines of every part of a run's history of one kind (`snapshots` or `changes`).
    pub async fn run_lines(&self, kind: &str, service: ServiceId, run_id: &str) -> Vec<Map<String, Json>> {
        let mut lines = Vec::new();
        for key in
            self.aws.keys(&format!("history/{kind}/{service}/dt=2026-11-22/123456789012.us-east-1.{run_id}.")).await
        {
            lines.extend(self.aws.read(&key).await.lines);
        }
        lines
    }

    /// The sessions the emulator serves now: (parent or none, session id).
    /// The scope the rig archives: the source's service in the emulator's home account and region.
    pub fn scope(&self, source: &impl SessionSource) -> Scope {
        Scope { service: source.service(), account_id: "123456789012".into(), region: "us-east-1".into() }
    }

    pub fn truth(&self, service: ServiceId) -> BTreeSet<String> {
        self.emulator.sessions(api_of(service)).into_iter().map(|s| s.id).collect()
    }
}

pub fn scope(service: ServiceId) -> session_archiver::table::Scope {
    session_archiver::table::Scope { service, account_id: "123456789012".into(), region: "us-east-1".into() }
}

pub fn request(event_id: &str, dry_run: bool) -> RunRequest {
    RunRequest {
        run_id: RunId::parse(event_id).unwrap(),
        event_id: event_id.into(),
        event_time: session_archiver::model::Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
        trigger: Trigger::Scheduled,
        dry_run,
        invocation_id: invocation_of(event_id),
        deadlines: Deadlines::none(),
    }
}

/// The invocation id [`request`] gives a run of `event_id`: the same for every run of it, as
/// Lambda's retries of one event have one request id.
pub fn invocation_of(event_id: &str) -> String {
    format!("invocation-{event_id}")
}

pub fn key(kind: &str, service: ServiceId, event_id: &str) -> String {
    format!("history/{kind}/{service}/dt=2026-11-22/123456789012.us-east-1.{event_id}.jsonl.gz")
}

pub fn small_world() -> EmulatorConfig {
    EmulatorConfig {
        seed: 7,
        pool_sessions: Shape::new(2, 70, 1),
        connection_status: Shape::account(60),
        ivs_stream_sessions: Shape::new(2, 40, 1),
        chime_proxy_sessions: Shape::new(2, 45, 1),
        gamelift_stream_sessions: Shape::account(80),
        ..EmulatorConfig::default()
    }
}

pub fn text(line: &Map<String, Json>, column: &str) -> String {
    line[column].as_str().unwrap_or_else(|| panic!("{column} is not a string: {line:?}")).to_owned()
}

pub fn ids(lines: &[Map<String, Json>]) -> Vec<String> {
    lines.iter().map(|l| text(l, "session_id")).collect()
}

pub fn changes_by_kind(lines: &[Map<String, Json>]) -> BTreeMap<String, BTreeSet<String>> {
    let mut kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in lines {
        kinds.entry(text(l, "change")).or_default().insert(text(l, "session_id"));
    }
    kinds
}

pub fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}
