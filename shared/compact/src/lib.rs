//! Compaction of the session history: a day's gzip'd NDJSON of one service, snapshots and
//! changes, into typed Parquet sorted by (account, region, session, observation time), with a
//! marker written last. The library of the `history-compactor` function; the five archiving
//! functions do not link it.

pub mod columns;
pub mod config;
pub mod dataset;
pub mod day;
pub mod event;
pub mod function;
pub mod keys;
pub mod parquet_object;
pub mod slices;
pub mod sort;

#[cfg(test)]
mod day_tests;
#[cfg(test)]
mod slices_tests;
