//! Scenarios across the library's layers, on the ports' in-memory twins: runs interrupted and
//! resumed, batches of scopes, listing states kept and rebuilt, and arbitrary input to every parser.

mod arbitrary_input;
mod batches;
mod listing_states;
mod run_states;
