//! A listing's state as an S3 object, read at the start of the next run instead of querying the
//! table: pure, no I/O.
//!
//! The object is what the listing's diff ends holding ([`super::ListingDiff::next_state`]): per
//! stored session, its 64-bit id fingerprint and its 48-bit word (a hash fingerprint, or when an
//! ended session's item expires, and flags), in id order. It is gzip'd lines: a JSON header that
//! names the format and its version, the scope, the listing, the generation it belongs to and
//! the run that wrote it; then one JSON string a session (`"<id><word>"` in hex, 28 digits),
//! about 15 bytes a session once gzip'd.
//!
//! The table stays the truth. A state object is used only when it provably says what the table
//! holds: its generation is the one the scope's lease vouches for (see
//! [`super::StateVouch`]), its header names this scope and listing and this format's version,
//! and its lines decode, in order, to as many sessions as the header says. Anything else is
//! refused with the reason, and the run reads the listing from the table instead.

use std::io::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::previous::PreviousState;
use crate::model::{Scope, Timestamp};

/// The format's name in every header.
pub const FORMAT: &str = "session-archiver/listing-state";
/// Its version: a state of another version is refused (and rebuilt).
pub const VERSION: u32 = 1;
/// A header is a few hundred bytes; a longer first line is not one.
const MAX_HEADER: usize = 64 * 1024;
/// Hex digits of an entry: a 64-bit id and a 48-bit word.
const ENTRY_DIGITS: usize = 16 + 12;

/// The first line of a state object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHeader {
    pub format: String,
    pub version: u32,
    pub service: String,
    pub account_id: String,
    pub region: String,
    /// The listing's key (its parent, or `-` for an account-wide listing).
    pub listing: String,
    /// The run that started the chain of runs this state belongs to.
    pub generation: String,
    pub written_by: String,
    pub written_at: Timestamp,
    pub sessions: u64,
}

impl StateHeader {
    pub fn new(scope: &Scope, listing: &str, generation: &str, written_by: &str, sessions: u64) -> Self {
        StateHeader {
            format: FORMAT.into(),
            version: VERSION,
            service: scope.service.as_str().into(),
            account_id: scope.account_id.clone(),
            region: scope.region.clone(),
            listing: listing.into(),
            generation: generation.into(),
            written_by: written_by.into(),
            written_at: Timestamp::now(),
            sessions,
        }
    }

    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a header serializes")
    }
}

/// The key of a listing's state object: one per scope and listing, replaced as the listing
/// changes. The listing's key is hashed: a parent's ARN is no path segment.
pub fn state_object_key(state_prefix: &str, scope: &Scope, listing: &str) -> String {
    let listing = hex::encode(&Sha256::digest(listing.as_bytes())[..8]);
    let prefix = if state_prefix.is_empty() { String::new() } else { format!("{state_prefix}/") };
    format!("{prefix}listings/{}/{}.{}/{listing}.state.ndjson.gz", scope.service, scope.account_id, scope.region)
}

/// One session's line.
pub fn entry_line(id: u64, word: u64) -> String {
    format!("\"{id:016x}{word:012x}\"")
}

/// Why a state object is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its header names another generation than the one vouched for.
    Stale { found: String, vouched: String },
    /// Another format or version.
    OtherVersion(String),
    /// Undecodable, out of order, short or long, or naming another scope or listing.
    Corrupt(String),
}

impl Refusal {
    /// A word for the summary and the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Stale { .. } => "stale",
            Refusal::OtherVersion(_) => "other_version",
            Refusal::Corrupt(_) => "corrupt",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Stale { found, vouched } => {
                write!(f, "stale: it belongs to generation {found}, and the lease vouches for {vouched}")
            }
            Refusal::OtherVersion(detail) => write!(f, "written by another version: {detail}"),
            Refusal::Corrupt(detail) => write!(f, "corrupt: {detail}"),
        }
    }
}

/// What a state object must be to be used.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    pub scope: &'a Scope,
    pub listing: &'a str,
    pub generation: &'a str,
}

/// Reads a state object's uncompressed bytes as they stream in (an [`std::io::Write`] sink, so a
/// gzip decoder can feed it), into a sealed [`PreviousState`] built at its final size. The first
/// refusal stops the stream.
pub struct StateDecoder<'a> {
    expected: Expected<'a>,
    line: Vec<u8>,
    header: Option<StateHeader>,
    state: PreviousState,
    refused: Option<Refusal>,
}

impl<'a> StateDecoder<'a> {
    pub fn new(expected: Expected<'a>) -> Self {
        StateDecoder { expected, line: Vec::new(), header: None, state: PreviousState::default(), refused: None }
    }

    /// The state, once every byte is in; or why it is refused.
    pub fn finish(mut self) -> Result<(StateHeader, PreviousState), Refusal> {
        if let Some(refused) = self.refused.take() {
            return Err(refused);
        }
        if !self.line.is_empty() {
            return Err(Refusal::Corrupt("its last line has no end: the object is truncated".into()));
        }
        let header = self.header.ok_or_else(|| Refusal::Corrupt("it is empty".into()))?;
        if self.state.len() as u64 != header.sessions {
            return Err(Refusal::Corrupt(format!(
                "it holds {} sessions, and its header says {}: the object is truncated",
                self.state.len(),
                header.sessions
            )));
        }
        Ok((header, self.state))
    }

    /// Why the object was refused, if it was already.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.refused.as_ref()
    }

    fn take_line(&mut self, line: &[u8]) -> Result<(), Refusal> {
        match &self.header {
            None => {
                let header = self.read_header(line)?;
                let sessions = usize::try_from(header.sessions).map_err(|_| corrupt("too many sessions"))?;
                self.state = PreviousState::sealed_with_capacity(sessions);
                self.header = Some(header);
                Ok(())
            }
            Some(header) => {
                let number = self.state.len() + 2;
                if self.state.len() as u64 == header.sessions {
                    return Err(corrupt(format!(
                        "line {number} is past the {} sessions its header says",
                        header.sessions
                    )));
                }
                let (id, word) = entry(line).ok_or_else(|| corrupt(format!("line {number} is not a session entry")))?;
                if !self.state.push_sorted(id, word) {
                    return Err(corrupt(format!("line {number} is out of order")));
                }
                Ok(())
            }
        }
    }

    fn read_header(&self, line: &[u8]) -> Result<StateHeader, Refusal> {
        let json: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| corrupt(format!("its header is not JSON: {e}")))?;
        let (format, version) =
            (json.get("format").and_then(|v| v.as_str()), json.get("version").and_then(|v| v.as_u64()));
        if format != Some(FORMAT) || version != Some(u64::from(VERSION)) {
            return Err(Refusal::OtherVersion(format!(
                "format {} version {}, where this version reads {FORMAT} version {VERSION}",
                format.unwrap_or("(none)"),
                version.map_or("(none)".into(), |v| v.to_string())
            )));
        }
        let header: StateHeader =
            serde_json::from_value(json).map_err(|e| corrupt(format!("its header does not decode: {e}")))?;
        let expected = &self.expected;
        let scope = expected.scope;
        if (header.service.as_str(), header.account_id.as_str(), header.region.as_str())
            != (scope.service.as_str(), scope.account_id.as_str(), scope.region.as_str())
            || header.listing != expected.listing
        {
            return Err(corrupt(format!(
                "it names {} {} {} listing {}, not this one",
                header.service, header.account_id, header.region, header.listing
            )));
        }
        if header.generation != expected.generation {
            return Err(Refusal::Stale { found: header.generation, vouched: expected.generation.into() });
        }
        Ok(header)
    }
}

impl Write for StateDecoder<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Some(refused) = &self.refused {
            return Err(std::io::Error::other(refused.to_string()));
        }
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let taken = if self.line.is_empty() {
                self.take_line(&rest[..end])
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..end]);
                self.take_line(&line)
            };
            if let Err(refused) = taken {
                let message = refused.to_string();
                self.refused = Some(refused);
                return Err(std::io::Error::other(message));
            }
            rest = &rest[end + 1..];
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_HEADER {
            let refused = corrupt(format!("a line runs past {MAX_HEADER} bytes"));
            let message = refused.to_string();
            self.refused = Some(refused);
            return Err(std::io::Error::other(message));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A state object's gzip'd bytes into a [`StateDecoder`]: what a read streams into.
pub struct StateReader<'a> {
    gunzip: flate2::write::GzDecoder<StateDecoder<'a>>,
}

impl<'a> StateReader<'a> {
    pub fn new(expected: Expected<'a>) -> Self {
        StateReader { gunzip: flate2::write::GzDecoder::new(StateDecoder::new(expected)) }
    }

    /// Where the object's bytes go.
    pub fn sink(&mut self) -> &mut (dyn Write + Send + 'a) {
        &mut self.gunzip
    }

    /// The state, once the read has ended (`read`: how it ended); the decoder's refusal comes
    /// first, as it is what stopped the read.
    pub fn finish<E: std::fmt::Display>(
        mut self,
        read: Result<(), E>,
    ) -> Result<(StateHeader, PreviousState), Refusal> {
        let ended = read.map_err(|e| e.to_string()).and_then(|()| self.gunzip.try_finish().map_err(|e| e.to_string()));
        if let Some(refusal) = self.gunzip.get_mut().refused.take() {
            return Err(refusal);
        }
        ended.map_err(|e| corrupt(format!("it is not whole gzip, or could not be read whole ({e})")))?;
        let decoder = self.gunzip.finish().map_err(|e| corrupt(format!("it is not whole gzip ({e})")))?;
        decoder.finish()
    }
}

fn corrupt(detail: impl Into<String>) -> Refusal {
    Refusal::Corrupt(detail.into())
}

/// A session's line: `"<16 hex digits of id><12 of word>"`.
fn entry(line: &[u8]) -> Option<(u64, u64)> {
    let digits = line.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if digits.len() != ENTRY_DIGITS {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    let id = u64::from_str_radix(&text[..16], 16).ok()?;
    let word = u64::from_str_radix(&text[16..], 16).ok()?;
    Some((id, word))
}

#[cfg(test)]
mod tests {
    use flate2::write::{GzDecoder, GzEncoder};

    use flate2::Compression;

    use super::*;
    use crate::model::ServiceId;

    fn scope() -> Scope {
        Scope {
            service: ServiceId::GameliftStreamSessions,
            account_id: "111122223333".into(),
            region: "us-west-2".into(),
        }
    }

    fn entries(n: u64) -> Vec<(u64, u64)> {
        let mut all: Vec<(u64, u64)> = (1..=n).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), (i << 4) | 1)).collect();
        all.sort_unstable();
        all
    }

    /// A state object's bytes: its header, then its entries, gzip'd.
    fn object(header: &StateHeader, entries: &[(u64, u64)]) -> Vec<u8> {
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        writeln!(gzip, "{}", header.line()).unwrap();
        for &(id, word) in entries {
            writeln!(gzip, "{}", entry_line(id, word)).unwrap();
        }
        gzip.finish().unwrap()
    }

    /// Decodes `body` as the run does: gunzipped into the decoder, in chunks of `chunk` bytes.
    fn decode(body: &[u8], generation: &str, chunk: usize) -> Result<Vec<(u64, u64)>, Refusal> {
        let scope = scope();
        let mut reader = StateReader::new(Expected { scope: &scope, listing: "-", generation });
        let read = body.chunks(chunk).try_for_each(|piece| reader.sink().write_all(piece));
        reader.finish(read).map(|(_, state)| state.iter().collect())
    }

    fn header(generation: &str, sessions: u64) -> StateHeader {
        StateHeader::new(&scope(), "-", generation, "r9", sessions)
    }

    #[test]
    fn a_state_comes_back_whole_whatever_the_chunks_it_streams_in() {
        let all = entries(10_000);
        let body = object(&header("g1", all.len() as u64), &all);
        for chunk in [1, 7, 8192, body.len()] {
            assert_eq!(decode(&body, "g1", chunk).as_ref(), Ok(&all), "chunks of {chunk}");
        }
        assert!(body.len() < all.len() * 16, "{} bytes for {} sessions", body.len(), all.len());
    }

    #[test]
    fn a_state_of_another_generation_is_stale() {
        let body = object(&header("g1", 3), &entries(3));
        assert_eq!(decode(&body, "g2", 64), Err(Refusal::Stale { found: "g1".into(), vouched: "g2".into() }));
    }

    #[test]
    fn a_state_of_another_version_is_refused_as_such() {
        let mut other = header("g1", 3);
        other.version = VERSION + 1;
        let refused = decode(&object(&other, &entries(3)), "g1", 64).unwrap_err();
        assert_eq!(refused.kind(), "other_version", "{refused}");
        assert!(refused.to_string().contains(&format!("version {}", VERSION + 1)), "{refused}");
    }

    #[test]
    fn a_damaged_state_is_corrupt_and_says_where() {
        let all = entries(50);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated", object(&header("g1", 50), &all)[..300].to_vec(), ""),
            ("short", object(&header("g1", 51), &all), "holds 50 sessions, and its header says 51"),
            ("long", object(&header("g1", 49), &all), "line 51 is past the 49 sessions"),
            ("unsorted", object(&header("g1", 2), &[all[1], all[0]]), "line 3 is out of order"),
            ("not gzip", b"{\"format\":".to_vec(), "gzip"),
            (
                "another scope",
                object(&StateHeader::new(&Scope { region: "eu-central-1".into(), ..scope() }, "-", "g1", "r9", 0), &[]),
                "eu-central-1",
            ),
        ];
        for (case, body, says) in cases {
            let refused = decode(&body, "g1", 100).unwrap_err();
            assert_eq!(refused.kind(), "corrupt", "{case}: {refused}");
            assert!(refused.to_string().contains(says), "{case}: {refused}");
        }
        let mut garbled = object(&header("g1", 2), &all[..2]);
        let mut gunzipped = GzDecoder::new(Vec::new());
        gunzipped.write_all(&garbled).unwrap();
        let mut text = gunzipped.finish().unwrap();
        let at = text.len() - 5;
        text[at] = b'x';
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        gzip.write_all(&text).unwrap();
        garbled = gzip.finish().unwrap();
        assert_eq!(decode(&garbled, "g1", 100), Err(Refusal::Corrupt("line 3 is not a session entry".into())));
    }

    #[test]
    fn a_listing_has_one_key_under_the_state_prefix() {
        let key = state_object_key("state", &scope(), "arn:aws:ivs:us-west-2:111122223333:channel/abc");
        assert!(key.starts_with("state/listings/gamelift-stream-sessions/111122223333.us-west-2/"), "{key}");
        assert!(key.ends_with(".state.ndjson.gz") && !key.contains("arn:"), "{key}");
        assert_ne!(key, state_object_key("state", &scope(), "-"));
    }
}
