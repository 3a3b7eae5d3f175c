//! A part's listing states (see [`crate::state_object`]): the scope's state object read
//! once at the start of the part, when the lease vouches for it, and spooled to the temporary
//! directory; each listing's previous state read from its section instead of the table; the
//! sections the part leaves (the state of each listing it completed and that changed, the diff
//! of each listing it stopped in) spooled as listings end; and at the end of the part, after its
//! items and before its history, the scope's next object: those sections and the ones it kept,
//! in listing order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tracing::{info, warn};

use super::spool::Spool;
use crate::diff::seen_in_carry;
use crate::diff::{ListingDiff, PreviousState};
use crate::error::Result;
use crate::history::{Bucket, HistoryObject};
use crate::model::Scope;
use crate::sources::Listing;
use crate::state_object::{
    entry_bytes, entry_line, entry_of, state_object_key, Expected, ScopeHeader, Section, SectionHeader, SectionKind,
    StateReader, ENTRY_BYTES,
};
use crate::table::{Cursor, StateVouch};

/// Entries read from a spool at a time.
const READ_ENTRIES: usize = 4096;

/// Where a listing's previous state comes from.
pub(super) enum Previous {
    /// Its section of the scope's state object: a state, or a carry of this run.
    Saved(PreviousState),
    /// The table; `rebuild`: the listing's section is then written from what its diff ends holding.
    Table { rebuild: bool },
}

/// Which listing state objects a part may read, and which it writes.
#[derive(Debug)]
pub(super) struct ListingStates {
    /// The generation whose objects say what the table holds, as the lease vouched; `None`:
    /// every listing reads the table.
    pub(super) trusted: Option<String>,
    /// Sections of the trusted object, as the lease says.
    pub(super) trusted_sections: u64,
    /// The generation of the objects the part writes: the trusted one, else a new one named
    /// after the run.
    pub(super) generation: String,
    /// Whether the part writes the state of each listing it completes (its listings return
    /// every session: no filter).
    pub(super) writes: bool,
}

impl ListingStates {
    pub(super) fn of(vouched: Option<&StateVouch>, run_id: &str, complete_listings: bool) -> Self {
        let trusted = vouched.and_then(|vouch| vouch.generation_for(run_id)).map(str::to_owned);
        let trusted_sections = vouched.filter(|_| trusted.is_some()).map_or(0, |vouch| vouch.sections);
        let generation = trusted.clone().unwrap_or_else(|| run_id.to_owned());
        ListingStates { trusted, trusted_sections, generation, writes: complete_listings }
    }
}

/// How a listing's part ended: for the part's result, and for the listing's section.
pub(super) enum ListingEnd {
    /// It read its last page.
    Done,
    /// Paging had to stop mid-listing: where it stopped, for the run's next part.
    Stopped(Cursor),
    /// Paging had to stop before it started.
    NotStarted,
}

/// The scope's state object as the part read it.
struct Read {
    /// `None` when there was nothing to read (no section).
    spool: Option<Mutex<Spool>>,
    sections: HashMap<String, Section>,
}

/// The sections the part writes, spooled.
struct Written {
    /// Made with the first section: a part that leaves none touches no file.
    spool: Option<Spool>,
    sections: BTreeMap<String, Section>,
    /// Listings whose section of the object read is kept as it is.
    kept: Vec<String>,
}

/// The listing states of one part.
pub(super) struct PartStates<'a, O> {
    bucket: &'a O,
    policy: &'a ListingStates,
    scope: &'a Scope,
    key: String,
    run_id: &'a str,
    /// The object read; or why the listings read the table.
    read: std::result::Result<Read, String>,
    written: Mutex<Written>,
}

impl<'a, O: Bucket> PartStates<'a, O> {
    /// Reads the scope's state object when the lease vouches for its generation.
    pub(super) async fn open(
        bucket: &'a O,
        policy: &'a ListingStates,
        scope: &'a Scope,
        state_prefix: &str,
        run_id: &'a str,
    ) -> Result<Self> {
        let key = state_object_key(state_prefix, scope);
        let written = Written { spool: None, sections: BTreeMap::new(), kept: Vec::new() };
        let read = match &policy.trusted {
            None => Err(format!(
                "no state object is vouched for (the scope's last run did not complete, or kept none): {key} is not read"
            )),
            // Nothing to read: every listing reads the table, as one without a section does.
            Some(_) if policy.trusted_sections == 0 => Ok(Read { spool: None, sections: HashMap::new() }),
            Some(generation) => read_object(bucket, &key, scope, generation, run_id).await?,
        };
        match &read {
            Ok(read) => {
                info!(key, sections = read.sections.len(), "the listings' previous states are the scope's state object")
            }
            Err(reason) => {
                warn!(reason, "the listings read their previous states from the table, to rebuild the state object")
            }
        }
        Ok(PartStates { bucket, policy, scope, key, run_id, read, written: Mutex::new(written) })
    }

    /// Where the previous state of `listing` comes from: its section of the object read (a
    /// state; or, for a listing the run stopped in, its carry), else the table, saying why.
    pub(super) fn previous_of(&self, listing: &Listing, resumed: bool) -> std::result::Result<PreviousState, String> {
        let read = self.read.as_ref().map_err(Clone::clone)?;
        let key = listing.key();
        let section = read
            .sections
            .get(&key)
            .ok_or_else(|| format!("the state object {} has no section for listing {key}", self.key))?;
        let usable = match (section.header.kind, resumed) {
            (SectionKind::State, false) => true,
            (SectionKind::Carry, true) => section.header.run.as_deref() == Some(self.run_id),
            _ => false,
        };
        if !usable {
            return Err(format!(
                "the state object {} holds a {:?} section of run {} for listing {key}, and the listing {} this run",
                self.key,
                section.header.kind,
                section.header.run.as_deref().unwrap_or("-"),
                if resumed { "resumes mid-pagination in" } else { "starts in" },
            ));
        }
        let mut spool = read.spool.as_ref().expect("a section read is spooled").lock().unwrap();
        load_section(&mut spool, section)
    }

    /// Spools the section `listing` leaves, ended as `end`: a listing done, its next state when the
    /// table was read for it or it `changed` something; a listing stopped, its diff, carried to
    /// the run's next part; a listing not started (no `diff`), its section, if any, kept.
    pub(super) fn leave(
        &self,
        listing: &Listing,
        end: &ListingEnd,
        diff: Option<&mut ListingDiff<'_>>,
        changed: bool,
    ) -> Result<()> {
        if !self.policy.writes {
            return Ok(());
        }
        let key = listing.key();
        let (kind, entries): (SectionKind, Box<dyn Iterator<Item = (u64, u64)> + '_>) = match (end, diff) {
            (ListingEnd::Done, Some(diff)) if changed || self.carried(&key) => {
                (SectionKind::State, Box::new(diff.next_state()))
            }
            (ListingEnd::Stopped(_), Some(diff)) => (SectionKind::Carry, Box::new(diff.carry())),
            _ => {
                if self.read.as_ref().is_ok_and(|read| read.sections.contains_key(&key)) {
                    self.written.lock().unwrap().kept.push(key);
                }
                return Ok(());
            }
        };
        let mut written = self.written.lock().unwrap();
        let spool = match &mut written.spool {
            Some(spool) => spool,
            None => written.spool.insert(Spool::create(&std::env::temp_dir(), self.run_id)?),
        };
        let first = spool.len() / ENTRY_BYTES as u64;
        let mut sessions = 0u64;
        for (id, word) in entries {
            spool.append(&entry_bytes(id, word))?;
            sessions += 1;
        }
        let run = (kind == SectionKind::Carry).then(|| self.run_id.to_owned());
        // The listing is the key: not held twice.
        let header = SectionHeader { listing: String::new(), kind, run, sessions };
        written.sections.insert(key, Section { header, first });
        Ok(())
    }

    /// Whether the object read holds a carry for `listing` (rewritten once the listing is done).
    fn carried(&self, key: &str) -> bool {
        self.read.as_ref().is_ok_and(|read| read.sections.get(key).is_some_and(|s| s.header.kind == SectionKind::Carry))
    }

    /// Whether `listing` left a carry in this part.
    pub(super) fn left_carry(&self, listing: &Listing) -> bool {
        let written = self.written.lock().unwrap();
        written.sections.get(&listing.key()).is_some_and(|section| section.header.kind == SectionKind::Carry)
    }

    /// The sessions `listing` has seen, read back from the carry it left (none: none).
    pub(super) fn carried_seen(&self, listing: &Listing) -> Result<Vec<u64>> {
        let mut written = self.written.lock().unwrap();
        let Written { spool, sections, .. } = &mut *written;
        let mut seen = Vec::new();
        let section = sections.get(&listing.key()).filter(|section| section.header.kind == SectionKind::Carry);
        if let (Some(spool), Some(section)) = (spool, section) {
            for_each_entry(spool, section, |id, word| {
                if seen_in_carry(word) {
                    seen.push(id);
                }
            })?;
        }
        Ok(seen)
    }

    /// Writes the scope's next state object, once the part's items are, before its history:
    /// the sections it spooled and the ones it kept, in listing order. Nothing when no section
    /// is new (the object read still says what the table holds). Returns whether it wrote, and
    /// the sections of the scope's object then.
    pub(super) async fn write(self, part: u32, upload_part_size: usize) -> Result<(bool, u64)> {
        let mut written = self.written.into_inner().unwrap();
        if !self.policy.writes || written.sections.is_empty() {
            let standing = self.read.as_ref().map_or(0, |read| read.sections.len() as u64);
            return Ok((false, standing));
        }
        // Borrowed, not copied: at 10,000 listings the sections' index is a few MB.
        let read = self.read.as_ref().ok();
        let mut order: Vec<(&str, Option<&Read>, &Section)> =
            written.sections.iter().map(|(key, section)| (key.as_str(), None, section)).collect();
        if let Some(read) = read {
            let kept = written.kept.iter().filter(|key| !written.sections.contains_key(*key));
            order.extend(
                kept.filter_map(|key| read.sections.get(key).map(|section| (key.as_str(), Some(read), section))),
            );
        }
        order.sort_unstable_by_key(|(key, _, _)| *key);
        let header = ScopeHeader::new(self.scope, &self.policy.generation, self.run_id, part, order.len() as u64);
        let mut object = HistoryObject::new(self.bucket, self.key.clone(), upload_part_size);
        let spooled = written.spool.as_mut().expect("a section written is spooled");
        let uploaded = upload(&mut object, &header, &order, spooled).await;
        match uploaded {
            Ok(done) => {
                info!(
                    key = done.key,
                    sections = order.len(),
                    bytes = done.bytes,
                    "the scope's state object is written"
                );
                Ok((true, order.len() as u64))
            }
            Err(err) => {
                object.abort().await;
                Err(err)
            }
        }
    }
}

/// Uploads the object: its header, then each section (its listing, where its entries are: the
/// object read, or else `spooled`, and the section) in the order given.
async fn upload<O: Bucket>(
    object: &mut HistoryObject<'_, O>,
    header: &ScopeHeader,
    order: &[(&str, Option<&Read>, &Section)],
    spooled: &mut Spool,
) -> Result<crate::history::WrittenObject> {
    object.push(&header.line()).await?;
    let mut buffer = vec![0u8; READ_ENTRIES * ENTRY_BYTES];
    for &(listing, read, section) in order {
        object.push(&SectionHeader { listing: listing.to_owned(), ..section.header.clone() }.line()).await?;
        let mut done = 0u64;
        while done < section.header.sessions {
            let n = (section.header.sessions - done).min(READ_ENTRIES as u64) as usize;
            let bytes = &mut buffer[..n * ENTRY_BYTES];
            let offset = (section.first + done) * ENTRY_BYTES as u64;
            match read {
                Some(read) => {
                    read.spool.as_ref().expect("a section read is spooled").lock().unwrap().read_at(offset, bytes)?
                }
                None => spooled.read_at(offset, bytes)?,
            }
            for entry in bytes.chunks(ENTRY_BYTES) {
                let (id, word) = entry_of(entry);
                object.push(&entry_line(id, word)).await?;
            }
            done += n as u64;
        }
    }
    object.finish().await
}

/// The scope's state object at `key`, spooled; or why it is not used. Only the spool failing is
/// an error: whatever the object is, the listings can read the table.
async fn read_object<O: Bucket>(
    bucket: &O,
    key: &str,
    scope: &Scope,
    generation: &str,
    run_id: &str,
) -> Result<std::result::Result<Read, String>> {
    let spool = Spool::create(&std::env::temp_dir(), run_id)?;
    let mut reader = StateReader::new(Expected { scope, generation }, SpoolSink(spool));
    let read = match bucket.get_object_into(key, reader.sink()).await {
        Ok(true) => Ok(()),
        Ok(false) => return Ok(Err(format!("the state object {key} is missing"))),
        Err(err) => Err(err),
    };
    Ok(match reader.finish(read) {
        Ok((_, sections, SpoolSink(spool))) => Ok(Read {
            spool: Some(Mutex::new(spool)),
            // The listing is the key: not held twice.
            sections: sections.into_iter().map(|mut s| (std::mem::take(&mut s.header.listing), s)).collect(),
        }),
        Err(refusal) => Err(format!("the state object {key} is not used: {refusal}")),
    })
}

/// A section's sessions, read from the spool into a sealed state at its final size.
fn load_section(spool: &mut Spool, section: &Section) -> std::result::Result<PreviousState, String> {
    let mut state = PreviousState::sealed_with_capacity(section.header.sessions as usize);
    let in_order = |id, word| {
        let pushed = state.push_sorted(id, word);
        debug_assert!(pushed, "the decoder checked the order");
    };
    for_each_entry(spool, section, in_order).map_err(|e| e.to_string())?;
    Ok(state)
}

/// Visits a section's entries in the spool, in order, a chunk at a time.
fn for_each_entry(spool: &mut Spool, section: &Section, mut visit: impl FnMut(u64, u64)) -> Result<()> {
    let sessions = section.header.sessions;
    let mut buffer = vec![0u8; READ_ENTRIES * ENTRY_BYTES];
    let mut done = 0u64;
    while done < sessions {
        let n = (sessions - done).min(READ_ENTRIES as u64) as usize;
        let bytes = &mut buffer[..n * ENTRY_BYTES];
        spool.read_at((section.first + done) * ENTRY_BYTES as u64, bytes)?;
        bytes.chunks(ENTRY_BYTES).map(entry_of).for_each(|(id, word)| visit(id, word));
        done += n as u64;
    }
    Ok(())
}

/// A spool as the decoder's sink of entries.
struct SpoolSink(Spool);

impl std::io::Write for SpoolSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.append(bytes).map_err(std::io::Error::other)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
