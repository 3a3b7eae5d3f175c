//! Scenarios across the library's layers, on the ports' in-memory twins: runs interrupted and
//! resumed, listing states kept and rebuilt, and arbitrary input to every parser.

mod arbitrary_input;
mod listing_states;
mod run_states;
