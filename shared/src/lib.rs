//! Session archiver: reads every page of five AWS "list sessions" APIs, keeps the current state
//! of every session, and appends the history.
//!
//! - [`model`]: service ids, the column list of every service, [`model::SessionRecord`];
//! - [`services`]: one place per API: operations, page sizes, parents, filters, columns;
//! - [`sources`]: one source per API (parent discovery, paging, mapping);
//! - [`table`]: current state in DynamoDB (port, adapter, diff);
//! - [`history`]: history in S3 (keys, NDJSON.gz lines, streaming writer, adapter);
//! - [`event`]: the scheduled and replay events, validated;
//! - [`lambda`]: cold start and the handler every function runs;
//! - [`member`]: the member role a function assumes to read a scope in another account;
//! - [`personal`]: user ids and phone numbers kept, hashed (HMAC-SHA256) or dropped;
//! - [`run`]: the one run that joins a source and the two sinks;
//! - [`plan`]: the planner, one queue message per scope (account and region) of a service;
//! - [`config`]: a function's environment, validated at cold start;
//! - [`deadline`]: the times an invocation works to, so every wait ends before its deadline;
//! - [`aws`]: the SDK configuration the functions share;
//! - [`error`]: the one error type.

pub mod aws;
pub mod config;
pub mod deadline;
pub mod error;
pub mod event;
pub mod history;
pub mod lambda;
pub mod member;
pub mod model;
pub mod personal;
pub mod plan;
pub mod run;
pub mod services;
pub mod sources;
pub mod table;

pub use error::{Error, Result};

#[cfg(test)]
mod arbitrary_input;
#[cfg(test)]
mod listing_states;
#[cfg(test)]
mod run_states;
/// The ports' in-memory twins, for this crate's tests and its sibling crates' (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub use model::{ServiceId, SessionRecord};
