//! The emulated account: parents and sessions as pure functions of (seed, parent, slot, tick).
//!
//! Nothing is stored per session, so a million sessions cost no memory and list fast. Every parent
//! has a fixed number of *slots*; a slot holds one session at a time. A slot's session goes through
//! its service's documented states as the clock ticks and, at the end of its life, is replaced by a
//! new session with a new id: old sessions disappear, new ones appear.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The five session APIs, as the emulator names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    PoolSessions,
    ConnectionStatus,
    IvsStreamSessions,
    ChimeProxySessions,
    GameliftStreamSessions,
}

impl Api {
    pub const ALL: [Api; 5] = [
        Api::PoolSessions,
        Api::ConnectionStatus,
        Api::IvsStreamSessions,
        Api::ChimeProxySessions,
        Api::GameliftStreamSessions,
    ];

    fn salt(self) -> u64 {
        self as u64 + 1
    }

    /// Ticks a session of this API lives before its slot gets a new one.
    fn lifetime(self) -> i64 {
        match self {
            Api::PoolSessions => 6,
            Api::ConnectionStatus => 24,
            Api::IvsStreamSessions => 8,
            Api::ChimeProxySessions => 6,
            Api::GameliftStreamSessions => 10,
        }
    }
}

/// How many parents and sessions one API has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// Parents that hold sessions (for account-wide APIs: must be 1 or 0).
    #[serde(default)]
    pub parents: u32,
    #[serde(default)]
    pub sessions_per_parent: u32,
    /// Extra parents with no sessions at all.
    #[serde(default)]
    pub empty_parents: u32,
}

impl Shape {
    pub fn new(parents: u32, sessions_per_parent: u32, empty_parents: u32) -> Self {
        Shape { parents, sessions_per_parent, empty_parents }
    }

    /// An account-wide API with `sessions` sessions.
    pub fn account(sessions: u32) -> Self {
        Shape { parents: 1, sessions_per_parent: sessions, empty_parents: 0 }
    }
}

/// Another account and region the emulator serves, with a world of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeWorld {
    pub account_id: String,
    pub region: String,
    /// Every call in this scope is denied (`AccessDeniedException`), as a service control policy
    /// denying the session APIs there makes it.
    #[serde(default)]
    pub denied: bool,
    /// Its session APIs list no session: the parents of every shape are there, without sessions.
    #[serde(default)]
    pub empty: bool,
}

/// The seeded account the emulator serves (its home: `account_id` in `region`), and the other
/// accounts and regions it serves with the same shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorConfig {
    pub seed: u64,
    pub account_id: String,
    pub region: String,
    pub pool_sessions: Shape,
    pub connection_status: Shape,
    pub ivs_stream_sessions: Shape,
    pub chime_proxy_sessions: Shape,
    pub gamelift_stream_sessions: Shape,
    /// DescribeWorkspacesConnectionStatus has no page size parameter: the service chooses it.
    pub connection_status_page_size: u32,
    /// Simulated seconds per tick.
    pub tick_seconds: i64,
    /// Simulated time of tick 0 (epoch seconds).
    pub start_epoch: i64,
    /// Share of session slots, in thousandths, that move on with the clock; the others keep
    /// their tick-0 session for good. 1000 (all) by default; lower it for a calm account.
    pub moving_per_mille: u32,
    /// Other accounts and regions, each a distinct world of the same shapes (its seed mixed with
    /// its account and region). A request is answered from the world of the account its access
    /// key belongs to and the region it was signed for; none: refused as AWS refuses a region the
    /// account has not enabled.
    pub other_scopes: Vec<ScopeWorld>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            seed: 1,
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            pool_sessions: Shape::new(2, 30, 1),
            connection_status: Shape::account(40),
            ivs_stream_sessions: Shape::new(3, 25, 1),
            chime_proxy_sessions: Shape::new(2, 30, 1),
            gamelift_stream_sessions: Shape::account(45),
            connection_status_page_size: 25,
            tick_seconds: 300,
            start_epoch: 1_767_225_600, // 2026-01-01T00:00:00Z
            moving_per_mille: 1000,
            other_scopes: Vec::new(),
        }
    }
}

impl EmulatorConfig {
    /// The configuration of the world of `scope`: the same shapes, a seed of its own.
    pub fn for_scope(&self, scope: &ScopeWorld) -> EmulatorConfig {
        let text = |value: &str| mix_all(&value.bytes().map(u64::from).collect::<Vec<_>>());
        let shape = |shape: Shape| if scope.empty { Shape { sessions_per_parent: 0, ..shape } } else { shape };
        EmulatorConfig {
            seed: mix_all(&[self.seed, text(&scope.account_id), text(&scope.region)]),
            account_id: scope.account_id.clone(),
            region: scope.region.clone(),
            pool_sessions: shape(self.pool_sessions),
            connection_status: shape(self.connection_status),
            ivs_stream_sessions: shape(self.ivs_stream_sessions),
            chime_proxy_sessions: shape(self.chime_proxy_sessions),
            gamelift_stream_sessions: shape(self.gamelift_stream_sessions),
            other_scopes: Vec::new(),
            ..self.clone()
        }
    }

    pub fn shape(&self, api: Api) -> Shape {
        match api {
            Api::PoolSessions => self.pool_sessions,
            Api::ConnectionStatus => self.connection_status,
            Api::IvsStreamSessions => self.ivs_stream_sessions,
            Api::ChimeProxySessions => self.chime_proxy_sessions,
            Api::GameliftStreamSessions => self.gamelift_stream_sessions,
        }
    }
}

/// One session as the emulator knows it, before a wire format renders it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimSession {
    pub api: Api,
    /// Pool id, channel ARN or voice connector id; `None` for account-wide APIs.
    pub parent: Option<String>,
    pub id: String,
    pub status: &'static str,
    pub user_id: Option<String>,
    pub started: i64,
    pub ended: Option<i64>,
    /// When the state last changed.
    pub updated: i64,
    pub reason: Option<&'static str>,
    pub has_error: bool,
    /// Stable per-session bits for the remaining fields.
    pub bits: u64,
}

/// SplitMix64: the emulator's only source of "randomness", so everything is reproducible.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn mix_all(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED, |acc, p| mix(acc ^ mix(*p)))
}

fn chars(mut h: u64, len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|i| {
            if i % 8 == 0 && i > 0 {
                h = mix(h);
            }
            let c = alphabet[(h % alphabet.len() as u64) as usize];
            h /= alphabet.len() as u64;
            c as char
        })
        .collect()
}

const LOWER_ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A WorkSpace id's bits (36^9 > 2^46): a slot in the high 26, its generation in the low 20.
const ID_MASK: u64 = (1 << 46) - 1;
const GENERATION_BITS: u32 = 20;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;
/// Odd, so multiplying by it modulo 2^46 is a bijection.
const ID_SCRAMBLE: u64 = 0x2545_F491_4F6D & ID_MASK | 1;

/// The inverse of [`ID_SCRAMBLE`] modulo 2^46 (Newton's iteration; each step doubles the bits).
fn id_unscramble() -> u64 {
    let mut inverse = ID_SCRAMBLE;
    for _ in 0..6 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(ID_SCRAMBLE.wrapping_mul(inverse)));
    }
    inverse & ID_MASK
}

/// A bijection of 46 bits that spreads every input bit over the output: multiply, fold the high
/// half onto the low (its own inverse, the shift being half the width), multiply.
fn scramble(n: u64) -> u64 {
    let n = n.wrapping_mul(ID_SCRAMBLE) & ID_MASK;
    (n ^ (n >> 23)).wrapping_mul(ID_SCRAMBLE) & ID_MASK
}

fn unscramble(n: u64) -> u64 {
    let n = n.wrapping_mul(id_unscramble()) & ID_MASK;
    (n ^ (n >> 23)).wrapping_mul(id_unscramble()) & ID_MASK
}
const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn uuid(h: u64) -> String {
    let a = mix(h);
    let b = mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 52) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// Parents of one API, in listing order, with a lookup by id.
#[derive(Debug, Default)]
pub struct Parents {
    pub ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl Parents {
    pub fn position(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }
}

/// The emulated account at a given tick.
#[derive(Debug)]
pub struct World {
    pub config: EmulatorConfig,
    parents: HashMap<Api, Parents>,
}

impl World {
    pub fn new(config: EmulatorConfig) -> Self {
        let mut parents = HashMap::new();
        for api in [Api::PoolSessions, Api::IvsStreamSessions, Api::ChimeProxySessions] {
            let shape = config.shape(api);
            let ids: Vec<String> =
                (0..shape.parents + shape.empty_parents).map(|p| World::parent_id(&config, api, p)).collect();
            let index = ids.iter().enumerate().map(|(i, id)| (id.clone(), i as u32)).collect();
            parents.insert(api, Parents { ids, index });
        }
        World { config, parents }
    }

    fn parent_id(config: &EmulatorConfig, api: Api, p: u32) -> String {
        let h = mix_all(&[config.seed, api.salt(), 0xFA, u64::from(p)]);
        match api {
            Api::PoolSessions => format!("wspool-{}", chars(h, 9, LOWER_ALNUM)),
            Api::IvsStreamSessions => {
                format!("arn:aws:ivs:{}:{}:channel/{}", config.region, config.account_id, chars(h, 12, ALNUM))
            }
            Api::ChimeProxySessions => chars(h, 22, LOWER_ALNUM),
            Api::ConnectionStatus | Api::GameliftStreamSessions => String::new(),
        }
    }

    /// Parents of an API that has them (pools, channels, voice connectors).
    pub fn parents(&self, api: Api) -> &Parents {
        static NONE: std::sync::OnceLock<Parents> = std::sync::OnceLock::new();
        self.parents.get(&api).unwrap_or_else(|| NONE.get_or_init(Parents::default))
    }

    /// Number of session slots of parent `p` (or of the account, `p` = 0).
    pub fn slots(&self, api: Api, p: u32) -> u32 {
        let shape = self.config.shape(api);
        if p < shape.parents {
            shape.sessions_per_parent
        } else {
            0
        }
    }

    pub fn now(&self, tick: u64) -> i64 {
        self.config.start_epoch + tick as i64 * self.config.tick_seconds
    }

    /// The session in slot `k` of parent `p` at `tick`.
    pub fn session(&self, api: Api, p: u32, k: u32, tick: u64) -> SimSession {
        let seed = self.config.seed;
        let life = api.lifetime();
        let slot_hash = mix_all(&[seed, api.salt(), u64::from(p), u64::from(k)]);
        let moves = mix(slot_hash ^ 0x00C0_FFEE) % 1000 < u64::from(self.config.moving_per_mille);
        let tick = if moves { tick } else { 0 };
        let offset = (slot_hash % life as u64) as i64;
        let x = tick as i64 + offset;
        let generation = x.div_euclid(life);
        let phase = x.rem_euclid(life);
        let born_tick = generation * life - offset;
        let h = mix_all(&[slot_hash, generation as u64]);
        let tick_s = self.config.tick_seconds;
        let jitter = (h % 97) as i64;
        let at = |phase: i64| self.config.start_epoch + (born_tick + phase) * tick_s + jitter;
        let started = at(0);
        let parent = self.parents(api).ids.get(p as usize).cloned();
        let user = Some(format!("user-{:03}", mix(h ^ 0x05E2) % 61));
        let mut s = SimSession {
            api,
            parent,
            id: String::new(),
            status: "",
            user_id: None,
            started,
            ended: None,
            updated: at(phase),
            reason: None,
            has_error: false,
            bits: h,
        };
        match api {
            Api::PoolSessions => {
                s.id = uuid(h);
                s.user_id = user;
                s.status = if phase < 4 { "CONNECTED" } else { "NOT_CONNECTED" };
            }
            Api::ConnectionStatus => {
                // A WorkSpace lives long; its connection state cycles every five ticks. A personal
                // WorkSpace has one user for life.
                s.id = self.workspace_id(k, generation);
                s.user_id = user;
                let cycle = (phase + (h % 5) as i64) % 5;
                s.status = match cycle {
                    0 | 1 => "CONNECTED",
                    2 | 3 => "DISCONNECTED",
                    _ => "UNKNOWN",
                };
                // Last user connection: the latest tick of this life in a CONNECTED phase.
                let last_connected = (0..=phase).rev().find(|q| (q + (h % 5) as i64) % 5 <= 1);
                s.ended = last_connected.map(at);
            }
            Api::IvsStreamSessions => {
                s.id = format!("st-{}", chars(h, 22, ALNUM));
                if phase >= 3 {
                    s.ended = Some(at(3) - 7);
                }
                s.status = if s.ended.is_some() { "OFFLINE" } else { "LIVE" };
                s.has_error = h.is_multiple_of(5) && phase >= 2;
            }
            Api::ChimeProxySessions => {
                s.id = chars(h, 22, LOWER_ALNUM);
                s.status = match phase {
                    0 => "Open",
                    1 | 2 => "InProgress",
                    _ => "Closed",
                };
                let changed = match phase {
                    0 => 0,
                    1 | 2 => 1,
                    _ => 3,
                };
                s.updated = at(changed);
                if phase >= 3 {
                    s.ended = Some(at(3));
                }
            }
            Api::GameliftStreamSessions => {
                let group = chars(mix(slot_hash), 9, ALNUM);
                s.id = format!(
                    "arn:aws:gameliftstreams:{}:{}:streamsession/sg-{group}/{}",
                    self.config.region,
                    self.config.account_id,
                    chars(h, 13, ALNUM)
                );
                s.user_id = user;
                let fails = h.is_multiple_of(9);
                let (status, changed) = if fails {
                    match phase {
                        0 => ("ACTIVATING", 0),
                        _ => ("ERROR", 1),
                    }
                } else {
                    match phase {
                        0 => ("ACTIVATING", 0),
                        1 => ("ACTIVE", 1),
                        2 | 3 => ("CONNECTED", 2),
                        4 => ("PENDING_CLIENT_RECONNECTION", 4),
                        5 => ("RECONNECTING", 5),
                        6 => ("CONNECTED", 6),
                        7 => ("TERMINATING", 7),
                        _ => ("TERMINATED", 8),
                    }
                };
                s.status = status;
                s.updated = at(changed);
                s.reason = match status {
                    "ERROR" => Some("placementTimeout"),
                    "TERMINATED" => Some(
                        ["idleTimeout", "apiTerminated", "applicationExit", "maxSessionLengthTimeout"]
                            [(h % 4) as usize],
                    ),
                    _ => None,
                };
            }
        }
        s
    }

    /// The id of the WorkSpace of slot `k` in its `generation`: the two packed in 46 bits, scrambled
    /// by a bijection keyed by the world's seed, as 9 base-36 characters, so a WorkSpace is found
    /// by its id ([`World::workspace`]) without an index of a million ids.
    fn workspace_id(&self, k: u32, generation: i64) -> String {
        let packed = (u64::from(k) << GENERATION_BITS) | (generation as u64 & GENERATION_MASK);
        let mut n = scramble((packed ^ self.workspace_key()) & ID_MASK);
        let mut digits = [b'0'; 9];
        for digit in digits.iter_mut().rev() {
            *digit = LOWER_ALNUM[(n % 36) as usize];
            n /= 36;
        }
        format!("ws-{}", String::from_utf8_lossy(&digits))
    }

    fn workspace_key(&self) -> u64 {
        mix(self.config.seed ^ 0x5753) & ID_MASK
    }

    /// The WorkSpace with this id at `tick`, if it is there (the account's WorkSpace of that slot
    /// in that generation).
    pub fn workspace(&self, id: &str, tick: u64) -> Option<SimSession> {
        let digits = id.strip_prefix("ws-").filter(|d| d.len() == 9)?;
        let n =
            digits.bytes().try_fold(0u64, |n, b| Some(n * 36 + LOWER_ALNUM.iter().position(|&c| c == b)? as u64))?;
        if n > ID_MASK {
            return None;
        }
        let packed = unscramble(n) ^ self.workspace_key();
        let k = u32::try_from(packed >> GENERATION_BITS).ok()?;
        if k >= self.slots(Api::ConnectionStatus, 0) {
            return None;
        }
        Some(self.session(Api::ConnectionStatus, 0, k, tick)).filter(|s| s.id == id)
    }

    /// Every session of an API at `tick`, in listing order: the emulator's ground truth.
    pub fn all_sessions(&self, api: Api, tick: u64) -> Vec<SimSession> {
        let parents = match api {
            Api::ConnectionStatus | Api::GameliftStreamSessions => 1,
            _ => self.parents(api).ids.len() as u32,
        };
        (0..parents)
            .flat_map(|p| (0..self.slots(api, p)).map(move |k| (p, k)))
            .map(|(p, k)| self.session(api, p, k, tick))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_documented_patterns_and_are_deterministic() {
        let world = World::new(EmulatorConfig::default());
        for id in &world.parents(Api::PoolSessions).ids {
            assert!(id.starts_with("wspool-") && id.len() == 16, "{id}");
        }
        let again = World::new(EmulatorConfig::default());
        assert_eq!(world.parents(Api::IvsStreamSessions).ids, again.parents(Api::IvsStreamSessions).ids);
        assert_eq!(world.all_sessions(Api::ChimeProxySessions, 3), again.all_sessions(Api::ChimeProxySessions, 3));
    }

    #[test]
    fn a_workspace_is_found_by_its_id_while_it_is_there() {
        let config = EmulatorConfig { connection_status: Shape::account(300), ..EmulatorConfig::default() };
        let world = World::new(config);
        let now = world.all_sessions(Api::ConnectionStatus, 40);
        for workspace in &now {
            assert!(workspace.id.starts_with("ws-") && workspace.id.len() == 12, "{}", workspace.id);
            assert_eq!(world.workspace(&workspace.id, 40).as_ref(), Some(workspace));
        }
        // A WorkSpace replaced since, another world's, or no WorkSpace id at all is not there.
        let later: std::collections::HashSet<String> =
            world.all_sessions(Api::ConnectionStatus, 100).into_iter().map(|s| s.id).collect();
        let gone: Vec<&SimSession> = now.iter().filter(|s| !later.contains(&s.id)).collect();
        assert!(!gone.is_empty());
        assert!(gone.iter().all(|s| world.workspace(&s.id, 100).is_none()));
        let other = World::new(EmulatorConfig { seed: 2, ..world.config.clone() });
        assert!(now.iter().all(|s| other.workspace(&s.id, 40).is_none()));
        for id in ["ws-", "ws-zzzzzzzzz", "ws-ABCDEFGHI", "wspool-abc123def"] {
            assert!(world.workspace(id, 40).is_none(), "{id}");
        }
    }

    #[test]
    fn sessions_change_state_and_get_replaced_over_time() {
        let world = World::new(EmulatorConfig::default());
        let before = world.all_sessions(Api::GameliftStreamSessions, 0);
        let later = world.all_sessions(Api::GameliftStreamSessions, 5);
        let changed = before.iter().zip(&later).filter(|(a, b)| a.id == b.id && a.status != b.status).count();
        let replaced = before.iter().zip(&later).filter(|(a, b)| a.id != b.id).count();
        assert!(changed > 0 && replaced > 0, "changed {changed}, replaced {replaced}");
        let ids: std::collections::HashSet<_> = later.iter().map(|s| &s.id).collect();
        assert_eq!(ids.len(), later.len(), "session ids are unique");
    }

    /// Changes between two ticks as a share of the sessions, counted as the archiver counts
    /// them: a slot whose session was replaced is one ended and one opened, a session whose
    /// state moved is one changed.
    fn churn(world: &World, api: Api, from: u64, to: u64) -> f64 {
        let before = world.all_sessions(api, from);
        let after = world.all_sessions(api, to);
        let changes: usize = before
            .iter()
            .zip(&after)
            .map(|(a, b)| match (a.id == b.id, a == b) {
                (false, _) => 2,
                (true, false) => 1,
                (true, true) => 0,
            })
            .sum();
        changes as f64 / before.len().max(1) as f64
    }

    #[test]
    fn only_the_moving_share_of_the_slots_changes() {
        // GIVEN the same account with every slot moving, a tenth of them, and none
        let world = |moving_per_mille| {
            World::new(EmulatorConfig {
                gamelift_stream_sessions: Shape::account(4000),
                moving_per_mille,
                ..EmulatorConfig::default()
            })
        };
        let [all, tenth, none] = [1000, 100, 0].map(|m| churn(&world(m), Api::GameliftStreamSessions, 0, 1));
        // THEN churn scales with the share, and a still account does not change at all
        assert!(all > 0.3, "{all}");
        assert!((tenth - all / 10.0).abs() < all / 30.0, "all {all}, a tenth moving {tenth}");
        assert_eq!(none, 0.0);
    }
}
