//! Session archiver: reads every page of five AWS "list sessions" APIs, keeps the current state
//! of every session, and appends the history.
//!
//! From the bottom up:
//! - [`error`]: the one error type;
//! - [`model`]: service ids, scopes, times, [`model::SessionRecord`];
//! - [`services`]: the registry, one entry per API: operations, page sizes, parents, filters, columns;
//! - [`personal`]: user ids and phone numbers kept, hashed (HMAC-SHA256) or dropped;
//! - [`aws`]: the SDK configuration every program shares, the member role, SQS;
//! - [`sources`]: one source per API (parent discovery, paging, mapping);
//! - [`diff`]: the pure diff of a listing against its previous state: what changed, what ended;
//! - [`state_object`]: the S3 format that keeps a scope's listing states between runs;
//! - [`table`]: current state in DynamoDB (ports, the adapter, its items, a run's progress);
//! - [`history`]: history in S3 (keys, NDJSON.gz lines, streaming writer, adapter);
//! - [`run`]: the one run that joins a source and the two sinks, to an invocation's deadline;
//! - [`lambda`]: the Lambda scaffolding of every program: runtime, environment, events, errors;
//! - [`plan`]: the planner's program, one queue message per scope (account and region) of a service;
//! - [`archive`]: the archiving functions' program: configuration, events, handler.
//!
//! The compactor's program is the crate `session-compaction`; the auditor's CLI, `session-audit`.

pub mod archive;
pub mod aws;
pub mod diff;
pub mod error;
pub mod history;
pub mod lambda;
pub mod model;
pub mod personal;
pub mod plan;
pub mod run;
pub mod services;
pub mod sources;
pub mod state_object;
pub mod table;

pub use error::{Error, Result};
pub use model::{ServiceId, SessionRecord};

/// Scenarios across the library's layers: runs and listings interrupted and resumed, arbitrary input.
#[cfg(test)]
mod tests;
