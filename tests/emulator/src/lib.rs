//! A local emulator of the four AWS services whose session APIs the archiver reads, written from
//! the AWS API documentation: WorkSpaces (awsJson1.1), IVS, Chime SDK Voice and GameLift Streams
//! (restJson1). The real aws-sdk-rust clients talk to it through `endpoint_url`.
//!
//! Served operations: `DescribeWorkspacesPoolSessions`, `DescribeWorkspacesPools`,
//! `DescribeWorkspacesConnectionStatus`, `DescribeWorkspaces` (a WorkSpace's user, directory and
//! computer name), IVS `ListStreamSessions` and `ListChannels`, Chime SDK
//! Voice `ListProxySessions` and `ListVoiceConnectors`, GameLift Streams
//! `ListStreamSessionsByAccount`.
//!
//! Control API (JSON, under `/_emulator/`): `POST tick?n=1`, `PUT faults/{operation|*}`,
//! `DELETE faults`, `POST expire-tokens`, `GET calls`, `DELETE calls`, `GET sessions/{api}`,
//! `GET config`. In-process tests use the same controls as methods of [`Emulator`].
//!
//! Besides its home account and region, it serves `other_scopes`, each a world of its own: a
//! request is answered from the world of the account its access key id encodes (the fixed local
//! key: the home account) in the region it was signed for, and refused with
//! `UnrecognizedClientException` where that account has no world in that region. The truth API
//! takes `?account_id=…&region=…`.

mod faults;
pub mod identity;
mod time;
mod token;
mod wire;
pub mod world;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use faults::{FaultPlan, OddPage, OpCounts};
pub use world::{Api, EmulatorConfig, ScopeWorld, Shape, SimSession, World};

/// The state every request handler shares.
pub struct Shared {
    /// The home account and region's world.
    pub(crate) world: World,
    /// The other scopes' worlds, by account and region.
    others: HashMap<(String, String), World>,
    /// The scopes where every call is denied.
    denied: std::collections::HashSet<(String, String)>,
    tick: AtomicU64,
    token_epoch: AtomicU64,
    requests: AtomicU64,
    faults: Mutex<HashMap<String, FaultPlan>>,
    calls: Mutex<BTreeMap<String, OpCounts>>,
}

impl Shared {
    pub fn new(config: EmulatorConfig) -> Arc<Self> {
        let others = config
            .other_scopes
            .iter()
            .map(|scope| ((scope.account_id.clone(), scope.region.clone()), World::new(config.for_scope(scope))))
            .collect();
        let denied = config
            .other_scopes
            .iter()
            .filter(|scope| scope.denied)
            .map(|scope| (scope.account_id.clone(), scope.region.clone()))
            .collect();
        Arc::new(Shared {
            world: World::new(config),
            others,
            denied,
            tick: AtomicU64::new(0),
            token_epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            faults: Mutex::new(HashMap::new()),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn tick(&self) -> u64 {
        self.tick.load(Ordering::SeqCst)
    }

    /// Advances the clock: sessions move on through their states, some end, some appear.
    pub fn advance(&self, ticks: u64) -> u64 {
        self.tick.fetch_add(ticks, Ordering::SeqCst) + ticks
    }

    /// Makes every next token handed out so far invalid, as if it had expired.
    pub fn expire_tokens(&self) {
        self.token_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn token_epoch(&self) -> u64 {
        self.token_epoch.load(Ordering::SeqCst)
    }

    pub fn set_faults(&self, operation: &str, plan: FaultPlan) {
        self.faults.lock().unwrap().insert(operation.to_owned(), plan);
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub(crate) fn plan_for(&self, operation: &str) -> FaultPlan {
        let faults = self.faults.lock().unwrap();
        faults.get(operation).or_else(|| faults.get("*")).cloned().unwrap_or_default()
    }

    /// A uniform draw in [0, 1) from the request counter: reproducible for a given call order.
    pub(crate) fn draw(&self) -> f64 {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let h = world::mix_all(&[self.world.config.seed, 0xFA17, n]);
        (h >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn count(&self, operation: &str, update: impl FnOnce(&mut OpCounts)) {
        update(self.calls.lock().unwrap().entry(operation.to_owned()).or_default());
    }

    pub fn calls(&self) -> BTreeMap<String, OpCounts> {
        self.calls.lock().unwrap().clone()
    }

    pub fn reset_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// Every session of an API right now: the emulator's own record, to check the archiver against.
    pub fn sessions(&self, api: Api) -> Vec<SimSession> {
        self.world.all_sessions(api, self.tick())
    }

    /// The world of `account_id` in `region`, if the emulator serves it.
    pub fn world_of(&self, account_id: &str, region: &str) -> Option<&World> {
        let home = &self.world.config;
        if home.account_id == account_id && home.region == region {
            return Some(&self.world);
        }
        self.others.get(&(account_id.to_owned(), region.to_owned()))
    }

    /// Whether every call in `account_id` and `region` is denied.
    pub fn is_denied(&self, account_id: &str, region: &str) -> bool {
        self.denied.contains(&(account_id.to_owned(), region.to_owned()))
    }

    /// Every session of an API in `account_id` and `region` right now, if the emulator serves it.
    pub fn sessions_in(&self, account_id: &str, region: &str, api: Api) -> Option<Vec<SimSession>> {
        Some(self.world_of(account_id, region)?.all_sessions(api, self.tick()))
    }

    pub fn parents(&self, api: Api) -> Vec<String> {
        self.world.parents(api).ids.clone()
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.world.config
    }
}

/// A running emulator on a loopback port; stops when dropped.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Emulator {
    /// Starts on a free loopback port, in the current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Self> {
        Emulator::start_on(config, "127.0.0.1:0".parse().expect("loopback address")).await
    }

    pub async fn start_on(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let shared = Shared::new(config);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = wire::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Emulator { addr, shared, shutdown: Some(tx) })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl std::ops::Deref for Emulator {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
