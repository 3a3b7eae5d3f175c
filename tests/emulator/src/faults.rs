//! Injectable faults and per-operation call counters.

use serde::{Deserialize, Serialize};

/// What goes wrong on an operation (or on every operation, under the key `*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultPlan {
    /// Share of calls answered with the service's own throttling error (0.0 to 1.0).
    pub throttle_rate: f64,
    /// Share of calls answered with a server error.
    pub server_error_rate: f64,
    /// 500 or 503.
    pub server_error_status: Option<u16>,
    /// Added to every call.
    pub latency_ms: u64,
    /// A service bug to show on successful list pages.
    pub odd_page: Option<OddPage>,
}

impl FaultPlan {
    pub fn throttling(rate: f64) -> Self {
        FaultPlan { throttle_rate: rate, ..Default::default() }
    }

    pub fn server_errors(rate: f64, status: u16) -> Self {
        FaultPlan { server_error_rate: rate, server_error_status: Some(status), ..Default::default() }
    }

    pub fn odd(odd: OddPage) -> Self {
        FaultPlan { odd_page: Some(odd), ..Default::default() }
    }
}

/// Pages a buggy service could return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OddPage {
    /// A later page hands back the token it was called with.
    RepeatToken,
    /// The first session of the page has no id.
    MissingId,
    /// The first session of the page appears twice.
    DuplicateSession,
    /// A timestamp of the first session is a word, not a time.
    WrongType,
}

/// Calls to one operation, and what the emulator did to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Every call that reached the operation.
    pub calls: u64,
    /// Calls answered with a throttling error.
    pub throttled: u64,
    /// Calls answered with an injected server error.
    pub server_errors: u64,
    /// Calls refused for a bad parameter, an unknown parent or a bad token.
    pub client_errors: u64,
    /// Calls answered with a page.
    pub pages: u64,
}
