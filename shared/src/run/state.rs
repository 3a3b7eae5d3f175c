//! A listing's state object: read instead of the table when the lease vouches for it, written
//! once a complete listing's items are (see [`crate::table::listing_state`]).
//!
//! Only account-wide listings keep one: they are the listings that grow with the account (a
//! million sessions in one listing), where the table's read costs the most. A per-parent listing
//! is small, and a GET and a PUT each run would cost more than its Query.

use tracing::{info, warn};

use super::pass::Pass;
use crate::error::Result;
use crate::history::{HistoryObject, ObjectStore};
use crate::sources::Listing;
use crate::table::listing_state::{entry_line, state_object_key, Expected, StateReader};
use crate::table::{ListingDiff, PreviousState, StateHeader};

/// Where a listing's previous state comes from.
pub(super) enum Previous {
    /// Its state object.
    Saved(PreviousState),
    /// The table; `rebuild`: its state object is then written from what the diff ends holding.
    Table { rebuild: bool },
}

impl<S, D, O: ObjectStore> Pass<'_, S, D, O> {
    /// Whether `listing` keeps a state object.
    fn keeps_state(&self, listing: &Listing) -> bool {
        self.states.is_some() && listing.parent_id.is_none()
    }

    /// Where the previous state of `listing` comes from: its state object when the lease vouches
    /// for it and it reads whole; else the table, saying why.
    pub(super) async fn previous_of(&self, listing: &Listing, resumed: bool) -> Previous {
        let Some((objects, states)) = self.states.filter(|_| self.keeps_state(listing)) else {
            return Previous::Table { rebuild: false };
        };
        let key = state_object_key(self.state_prefix, self.scope, &listing.key());
        let read = match (&states.trusted, resumed) {
            (_, true) => Err(format!("the listing resumes mid-pagination, past what its state object {key} holds")),
            (None, false) => Err(format!(
                "no state object is vouched for (the scope's last run did not complete, or kept none): {key} is not read"
            )),
            (Some(generation), false) => read_state(objects, &key, self, &listing.key(), generation).await,
        };
        match read {
            Ok(state) => {
                info!(key, sessions = state.len(), "the listing's previous state is its state object");
                Previous::Saved(state)
            }
            Err(reason) => {
                warn!(reason, "reading the listing's previous state from the table, to rebuild its state object");
                self.state_rebuilt_because.lock().unwrap().get_or_insert(reason);
                Previous::Table { rebuild: true }
            }
        }
    }

    /// Writes the state `diff` ends holding for a complete `listing`, after its items: when the
    /// table was read for it, or when this run wrote any of its items.
    pub(super) async fn save_state(
        &self,
        listing: &Listing,
        diff: &mut ListingDiff<'_>,
        rebuild: bool,
        wrote: bool,
    ) -> Result<bool> {
        let Some((objects, states)) = self.states.filter(|(_, states)| states.writes) else { return Ok(false) };
        if !self.keeps_state(listing) || !(rebuild || wrote) {
            return Ok(false);
        }
        let key = state_object_key(self.state_prefix, self.scope, &listing.key());
        let sessions = diff.next_state().count() as u64;
        let header = StateHeader::new(self.scope, &listing.key(), &states.generation, &self.mark.run_id, sessions);
        let mut object = HistoryObject::new(objects, key, self.part_size);
        let written = async {
            object.push(&header.line()).await?;
            for (id, word) in diff.next_state() {
                object.push(&entry_line(id, word)).await?;
            }
            object.finish().await
        };
        match written.await {
            Ok(written) => {
                info!(key = written.key, sessions, bytes = written.bytes, "the listing's state object is written");
                Ok(true)
            }
            Err(err) => {
                object.abort().await;
                Err(err)
            }
        }
    }
}

/// The state object at `key`, decoded as it streams in; or why it is not used.
async fn read_state<O: ObjectStore, S, D>(
    objects: &O,
    key: &str,
    pass: &Pass<'_, S, D, O>,
    listing: &str,
    generation: &str,
) -> std::result::Result<PreviousState, String> {
    let expected = Expected { scope: pass.scope, listing, generation };
    let mut reader = StateReader::new(expected);
    let read = match objects.get_object_into(key, reader.sink()).await {
        Ok(true) => Ok(()),
        Ok(false) => return Err(format!("the state object {key} is missing")),
        Err(err) => Err(err),
    };
    reader
        .finish(read)
        .map(|(_, state)| state)
        .map_err(|refusal| format!("the state object {key} is not used: {refusal}"))
}
