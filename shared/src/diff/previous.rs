//! A listing's previous state as the diff holds it: per stored session, its 64-bit id fingerprint
//! and a 48-bit word (a hash fingerprint and flags), in 12 bytes plus a share of a prefix table.
//!
//! While the table's pages stream by, each session takes four 32-bit words in the order it came
//! (16 bytes). Sealed, the entries are sorted by id and packed in place into three words: the id's
//! low 48 bits and the word. The ids' top 16 bits are kept once per run of entries that share
//! them, in a table of at most 65,536 runs (6 bytes each). At a million sessions that is 12.4
//! bytes a session, against 16 for an id and a word side by side; below about 200,000 sessions
//! the table makes it up to 18. Nothing is lost: every id comes back whole.

/// Bits of a word: what the caller stores beside an id.
pub const WORD_BITS: u32 = 48;

/// Low bits of an id kept in its entry; the rest are its prefix.
const SUFFIX_BITS: u32 = 48;

/// Words per entry while remembering (id high, id low, word high, word low) and once sealed.
const OPEN: usize = 4;
const SEALED: usize = 3;

#[derive(Debug, Default)]
pub struct PreviousState {
    words: Vec<u32>,
    /// Once sealed: the prefixes (an id's top 16 bits) present, ascending, and the index of the
    /// first entry with each.
    prefixes: Vec<u16>,
    starts: Vec<u32>,
    sealed: bool,
}

impl PreviousState {
    /// Sessions held.
    pub fn len(&self) -> usize {
        self.words.len() / if self.sealed { SEALED } else { OPEN }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Adds a session; `word` must fit [`WORD_BITS`]. Unseals the state if it was sealed.
    pub fn push(&mut self, id: u64, word: u64) {
        assert!(word >> WORD_BITS == 0, "a word has {WORD_BITS} bits");
        self.unseal();
        self.words.extend([(id >> 32) as u32, id as u32, (word >> 32) as u32, word as u32]);
    }

    /// Sorts the entries by id and packs them into three words each, in place; `false` if it was
    /// sealed already.
    pub fn seal(&mut self) -> bool {
        if self.sealed {
            return false;
        }
        let (entries, _) = self.words.as_chunks_mut::<OPEN>();
        entries.sort_unstable_by_key(|entry| (entry[0], entry[1]));
        let n = entries.len();
        self.prefixes.clear();
        self.starts.clear();
        // Entry i moves from 4i to 3i: never over an entry not yet moved.
        for i in 0..n {
            let [id_high, id_low, word_high, word_low]: [u32; OPEN] =
                self.words[OPEN * i..OPEN * (i + 1)].try_into().expect("four words");
            let prefix = (id_high >> 16) as u16;
            if self.prefixes.last() != Some(&prefix) {
                self.prefixes.push(prefix);
                self.starts.push(u32::try_from(i).expect("at most 2³² sessions a listing"));
            }
            let id = (u64::from(id_high) << 32) | u64::from(id_low);
            let word = (u64::from(word_high) << 32) | u64::from(word_low);
            self.words[SEALED * i..SEALED * (i + 1)].copy_from_slice(&pack(id, word));
        }
        self.words.truncate(SEALED * n);
        self.words.shrink_to_fit();
        self.prefixes.shrink_to_fit();
        self.starts.shrink_to_fit();
        self.sealed = true;
        true
    }

    /// An empty sealed state with room for `n` sessions, filled in id order by
    /// [`PreviousState::push_sorted`]: built at its sealed size, never at four words an entry.
    pub fn sealed_with_capacity(n: usize) -> Self {
        let mut state = PreviousState { sealed: true, ..PreviousState::default() };
        state.words.reserve_exact(SEALED * n);
        state
    }

    /// Appends a session to a sealed state; `false` (and nothing added) unless its id is above
    /// every id held.
    pub fn push_sorted(&mut self, id: u64, word: u64) -> bool {
        assert!(self.sealed, "sealed before it is extended in order");
        assert!(word >> WORD_BITS == 0, "a word has {WORD_BITS} bits");
        if !self.is_empty() && self.id_at(self.len() - 1) >= id {
            return false;
        }
        let at = self.len();
        let prefix = (id >> SUFFIX_BITS) as u16;
        if self.prefixes.last() != Some(&prefix) {
            self.prefixes.push(prefix);
            self.starts.push(u32::try_from(at).expect("at most 2³² sessions a listing"));
        }
        self.words.extend(pack(id, word));
        true
    }

    /// Adds sessions not held yet (`batch`: ascending ids, none held already) to a sealed state,
    /// in place from the back, so the state grows by their 12 bytes each and is never copied.
    pub fn merge_sorted(&mut self, batch: &[(u64, u64)]) {
        assert!(self.sealed || self.is_empty(), "sealed before it is merged into");
        self.sealed = true;
        let (old, added) = (self.len(), batch.len());
        let old_prefixes = std::mem::take(&mut self.prefixes);
        let old_starts = std::mem::take(&mut self.starts);
        let old_id = |words: &[u32], run: usize, at: usize| {
            let entry: &[u32; SEALED] = words[SEALED * at..SEALED * (at + 1)].try_into().expect("three words");
            (u64::from(old_prefixes[run]) << SUFFIX_BITS) | suffix_of(entry)
        };
        self.words.reserve_exact(SEALED * added);
        self.words.resize(SEALED * (old + added), 0);
        // Runs of the merged state, found from the back: (prefix, first entry).
        let mut runs: Vec<(u16, u32)> = Vec::with_capacity(old_prefixes.len() + added.min(1 << 16));
        let (mut i, mut j, mut run) = (old, added, old_prefixes.len());
        for slot in (0..old + added).rev() {
            while run > 0 && i > 0 && old_starts[run - 1] as usize > i - 1 {
                run -= 1;
            }
            let take_old = i > 0 && (j == 0 || old_id(&self.words, run - 1, i - 1) > batch[j - 1].0);
            // Read before written: `slot` is never below the old entry being moved.
            let (id, word) = if take_old {
                i -= 1;
                (old_id(&self.words, run - 1, i), self.sealed_word(i))
            } else {
                j -= 1;
                batch[j]
            };
            assert!(word >> WORD_BITS == 0, "a word has {WORD_BITS} bits");
            self.words[SEALED * slot..SEALED * (slot + 1)].copy_from_slice(&pack(id, word));
            let prefix = (id >> SUFFIX_BITS) as u16;
            let first = u32::try_from(slot).expect("at most 2³² sessions a listing");
            match runs.last_mut() {
                Some((last, start)) if *last == prefix => *start = first,
                _ => runs.push((prefix, first)),
            }
        }
        runs.reverse();
        (self.prefixes, self.starts) = runs.into_iter().unzip();
    }

    /// Replaces the word of the session at `at`, once sealed.
    pub fn set_word(&mut self, at: usize, word: u64) {
        assert!(self.sealed, "sealed before it is changed");
        assert!(word >> WORD_BITS == 0, "a word has {WORD_BITS} bits");
        let entry = &mut self.words[SEALED * at..SEALED * (at + 1)];
        entry[1] = (entry[1] & 0xFFFF_0000) | (word >> 32) as u32;
        entry[2] = word as u32;
    }

    /// The id of the session at `at`, once sealed.
    fn id_at(&self, at: usize) -> u64 {
        let run = self.starts.partition_point(|&start| start as usize <= at) - 1;
        let entry: &[u32; SEALED] = self.words[SEALED * at..SEALED * (at + 1)].try_into().expect("three words");
        (u64::from(self.prefixes[run]) << SUFFIX_BITS) | suffix_of(entry)
    }

    /// Back to four words an entry, for more pushes after a seal.
    fn unseal(&mut self) {
        if !self.sealed {
            return;
        }
        let entries: Vec<(u64, u64)> = self.iter().collect();
        self.words.clear();
        self.prefixes.clear();
        self.starts.clear();
        self.sealed = false;
        for (id, word) in entries {
            self.words.extend([(id >> 32) as u32, id as u32, (word >> 32) as u32, word as u32]);
        }
    }

    /// Where the session with this id is, once sealed.
    pub fn find(&self, id: u64) -> Option<usize> {
        assert!(self.sealed || self.is_empty(), "sealed before it is searched");
        let run = self.prefixes.binary_search(&((id >> SUFFIX_BITS) as u16)).ok()?;
        let start = self.starts[run] as usize;
        let end = self.starts.get(run + 1).map_or(self.len(), |&next| next as usize);
        let (entries, _) = self.words.as_chunks::<SEALED>();
        let suffix = id & ((1 << SUFFIX_BITS) - 1);
        entries[start..end].binary_search_by_key(&suffix, suffix_of).ok().map(|i| start + i)
    }

    /// The word of the session at `at`, once sealed.
    pub fn word(&self, at: usize) -> u64 {
        assert!(self.sealed, "sealed before it is read");
        self.sealed_word(at)
    }

    /// Every (id, word), in id order, once sealed: each run of entries with its prefix.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        assert!(self.sealed || self.is_empty(), "sealed before it is read");
        let (entries, _) = self.words.as_chunks::<SEALED>();
        self.prefixes.iter().enumerate().flat_map(move |(run, &prefix)| {
            let start = self.starts[run] as usize;
            let end = self.starts.get(run + 1).map_or(entries.len(), |&next| next as usize);
            (start..end)
                .map(move |at| ((u64::from(prefix) << SUFFIX_BITS) | suffix_of(&entries[at]), self.sealed_word(at)))
        })
    }

    /// Bytes held (for the memory test).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.words.capacity() * 4 + self.prefixes.capacity() * 2 + self.starts.capacity() * 4
    }

    fn sealed_word(&self, at: usize) -> u64 {
        let entry = &self.words[SEALED * at..SEALED * (at + 1)];
        (u64::from(entry[1] & 0xFFFF) << 32) | u64::from(entry[2])
    }
}

/// A sealed entry: the id's low 48 bits, then the 48-bit word.
fn pack(id: u64, word: u64) -> [u32; SEALED] {
    let suffix = id & ((1 << SUFFIX_BITS) - 1);
    [(suffix >> 16) as u32, ((suffix as u32) << 16) | (word >> 32) as u32, word as u32]
}

fn suffix_of(entry: &[u32; SEALED]) -> u64 {
    (u64::from(entry[0]) << 16) | u64::from(entry[1] >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scrambled ids, spread over the whole 64-bit range.
    fn ids(n: u64) -> Vec<u64> {
        (0..n).map(|i| (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect()
    }

    fn word_of(id: u64) -> u64 {
        id.rotate_left(17) & ((1 << WORD_BITS) - 1)
    }

    #[test]
    fn every_id_and_word_comes_back_whole_once_sealed() {
        // GIVEN sessions pushed in no order, with ids at both ends of the range
        let mut ids = ids(50_000);
        ids.extend([0, 1, u64::MAX, u64::MAX - 1, 0xFFFF_0000_0000_0000]);
        let mut state = PreviousState::default();
        for &id in &ids {
            state.push(id, word_of(id));
        }
        // WHEN the state is sealed
        state.seal();
        // THEN each id is found with its word, and an id not pushed is not
        assert_eq!(state.len(), ids.len());
        for &id in &ids {
            let at = state.find(id).unwrap_or_else(|| panic!("{id:#x} is found"));
            assert_eq!(state.word(at), word_of(id));
        }
        for absent in [2, 0x8000_0000_0000_0001, u64::MAX - 2] {
            assert_eq!(state.find(absent), None);
        }
        // AND they come back in id order, whole
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(state.iter().map(|(id, _)| id).collect::<Vec<_>>(), sorted);
        assert!(state.iter().all(|(id, word)| word == word_of(id)));
    }

    #[test]
    fn bits_set_on_a_sealed_entry_stay_on_that_entry_and_survive_more_pushes() {
        let ids = ids(1000);
        let mut state = PreviousState::default();
        for &id in &ids[..500] {
            state.push(id, word_of(id) & !1);
        }
        state.seal();
        let at = state.find(ids[7]).unwrap();
        state.set_word(at, state.word(at) | 1);
        assert_eq!(state.word(at), (word_of(ids[7]) & !1) | 1);
        // WHEN more sessions come after the seal
        for &id in &ids[500..] {
            state.push(id, word_of(id) & !1);
        }
        state.seal();
        // THEN every session is there, and only the flagged one has the bit
        assert_eq!(state.len(), 1000);
        let flagged: Vec<u64> = state.iter().filter(|(_, word)| word & 1 == 1).map(|(id, _)| id).collect();
        assert_eq!(flagged, [ids[7]]);
    }

    #[test]
    fn a_million_sessions_cost_under_twelve_and_a_half_bytes_each() {
        let n = 1_000_000;
        let mut state = PreviousState::default();
        for id in ids(n as u64) {
            state.push(id, word_of(id));
        }
        state.seal();
        let per_session = state.bytes() as f64 / n as f64;
        assert!(per_session < 12.5, "{per_session:.2} bytes a session");
    }

    #[test]
    fn sessions_merged_in_batches_or_pushed_in_order_are_found_whole() {
        // GIVEN a sealed state, and batches of sessions it does not hold, some sharing prefixes
        // with it and some at both ends of the range
        let all = ids(30_000);
        let mut state = PreviousState::default();
        for &id in &all[..10_000] {
            state.push(id, word_of(id));
        }
        state.seal();
        let mut batches: Vec<Vec<(u64, u64)>> =
            all[10_000..].chunks(4096).map(|c| c.iter().map(|&id| (id, word_of(id))).collect()).collect();
        batches.push(vec![(0, 5), (u64::MAX, 6)]);
        // WHEN each batch is merged, sorted
        for batch in &mut batches {
            batch.sort_unstable();
            state.merge_sorted(batch);
        }
        // THEN every session is found with its word, in id order
        assert_eq!(state.len(), 30_002);
        for &id in &all {
            assert_eq!(state.find(id).map(|at| state.word(at)), Some(word_of(id)), "{id:#x}");
        }
        assert_eq!(
            (state.find(0).map(|at| state.word(at)), state.find(u64::MAX).map(|at| state.word(at))),
            (Some(5), Some(6))
        );
        let merged: Vec<(u64, u64)> = state.iter().collect();
        assert!(merged.windows(2).all(|w| w[0].0 < w[1].0));
        // AND the same sessions pushed in order build the same state
        let mut ordered = PreviousState::sealed_with_capacity(merged.len());
        merged.iter().for_each(|&(id, word)| assert!(ordered.push_sorted(id, word)));
        assert_eq!(ordered.iter().collect::<Vec<_>>(), merged);
        assert!(!ordered.push_sorted(7, 0), "an id below the last is refused");
        assert_eq!(ordered.len(), merged.len());
    }

    #[test]
    fn an_empty_state_finds_nothing() {
        let mut state = PreviousState::default();
        assert_eq!(state.find(42), None);
        state.seal();
        assert_eq!((state.find(42), state.len(), state.iter().count()), (None, 0, 0));
    }
}
