//! Session archiver: reads every page of five AWS "list sessions" APIs, keeps the current state
//! of every session, and appends the history.
//!
//! - [`model`]: service ids, the column list of every service, [`model::SessionRecord`];
//! - [`sources`]: one source per API (parent discovery, paging, mapping);
//! - [`history`]: S3 keys and the NDJSON.gz encoding of history lines;
//! - [`aws`]: the SDK configuration the functions share;
//! - [`error`]: the one error type.

pub mod aws;
pub mod error;
pub mod history;
pub mod model;
pub mod sources;

pub use error::{Error, Result};
pub use model::{ServiceId, SessionRecord};
