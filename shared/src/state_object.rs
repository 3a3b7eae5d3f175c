//! The listing states of a scope as one S3 object, read at the start of a part instead of
//! querying the table: pure, no I/O.
//!
//! A listing's state is what its diff ends holding ([`crate::diff::ListingDiff::next_state`]): per
//! stored session, its 64-bit id fingerprint and its 48-bit word (a hash fingerprint, or when an
//! ended session's item expires, and flags), in id order. A listing a part stopped in leaves its
//! diff as it stands instead, flags and all (a *carry*), for the run's next part only.
//!
//! The object is gzip'd lines: a JSON header that names the format and its version, the scope,
//! the generation its states belong to and the run that wrote it; then, in listing order, a
//! section a listing: a JSON line naming the listing, its kind and its number of sessions, then
//! one JSON string a session (`"<id><word>"`, 28 hex digits), about 15 bytes a session gzip'd.
//! One object a scope: an unchanged run of any number of listings reads it with one GET.
//!
//! The table stays the truth. The object is used only when it provably says what the table
//! holds: its generation is the one the scope's lease vouches for ([`crate::table::StateVouch`]), its
//! header names this scope and this format's version, and every line decodes, in order, to as
//! many sections and sessions as announced. Anything else is refused with the reason, and the
//! run reads its listings from the table instead.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::model::{Scope, Timestamp};

/// The format's name in every header.
pub const FORMAT: &str = "session-archiver/listing-states";
/// Its version: an object of another version is refused (and rebuilt).
pub const VERSION: u32 = 1;
/// A session as a decoder hands it on: id and word, big-endian, 8 and 6 bytes.
pub const ENTRY_BYTES: usize = 14;
/// Header lines are a few hundred bytes; a longer line is not one.
const MAX_LINE: usize = 64 * 1024;
/// Hex digits of an entry line: a 64-bit id and a 48-bit word.
const ENTRY_DIGITS: usize = 16 + 12;

/// The first line of the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeHeader {
    pub format: String,
    pub version: u32,
    pub service: String,
    pub account_id: String,
    pub region: String,
    /// The run that started the chain of runs these states belong to.
    pub generation: String,
    pub written_by: String,
    /// The part of `written_by` that wrote it (0 for the first).
    pub part: u32,
    pub written_at: Timestamp,
    pub sections: u64,
}

impl ScopeHeader {
    pub fn new(scope: &Scope, generation: &str, written_by: &str, part: u32, sections: u64) -> Self {
        ScopeHeader {
            format: FORMAT.into(),
            version: VERSION,
            service: scope.service.as_str().into(),
            account_id: scope.account_id.clone(),
            region: scope.region.clone(),
            generation: generation.into(),
            written_by: written_by.into(),
            part,
            written_at: Timestamp::now(),
            sections,
        }
    }

    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a header serializes")
    }
}

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    /// The listing's state after a complete listing.
    State,
    /// The diff of a listing a part stopped in, for the same run's next part.
    Carry,
}

/// The line that opens a section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionHeader {
    /// The listing's key (its parent, or `-` for an account-wide listing).
    pub listing: String,
    pub kind: SectionKind,
    /// For a carry: the run whose next part may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub sessions: u64,
}

impl SectionHeader {
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a section header serializes")
    }
}

/// A section as decoded: its header, and the index of its first entry among all the entries the
/// decoder handed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub header: SectionHeader,
    pub first: u64,
}

/// The key of a scope's listing states: one per scope, replaced as its listings change.
pub fn state_object_key(state_prefix: &str, scope: &Scope) -> String {
    let prefix = if state_prefix.is_empty() { String::new() } else { format!("{state_prefix}/") };
    format!("{prefix}listings/{}/{}.{}.states.ndjson.gz", scope.service, scope.account_id, scope.region)
}

/// One session's line.
pub fn entry_line(id: u64, word: u64) -> String {
    format!("\"{id:016x}{word:012x}\"")
}

/// One session as the decoder hands it on.
pub fn entry_bytes(id: u64, word: u64) -> [u8; ENTRY_BYTES] {
    let mut bytes = [0u8; ENTRY_BYTES];
    bytes[..8].copy_from_slice(&id.to_be_bytes());
    bytes[8..].copy_from_slice(&word.to_be_bytes()[2..]);
    bytes
}

/// The session in `bytes` (from [`entry_bytes`]).
pub fn entry_of(bytes: &[u8]) -> (u64, u64) {
    let id = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes of id"));
    let mut word = [0u8; 8];
    word[2..].copy_from_slice(&bytes[8..ENTRY_BYTES]);
    (id, u64::from_be_bytes(word))
}

/// Why the object is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its header names another generation than the one vouched for.
    Stale { found: String, vouched: String },
    /// Another format or version.
    OtherVersion(String),
    /// Undecodable, out of order, short or long, or naming another scope.
    Corrupt(String),
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

fn corrupt(detail: impl Into<String>) -> Refusal {
    Refusal::Corrupt(detail.into())
}

/// What the object must be to be used.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    pub scope: &'a Scope,
    pub generation: &'a str,
}

/// The section being read: its entries still to come, and the last id read.
struct Open {
    remaining: u64,
    last: Option<u64>,
}

/// Reads the object's uncompressed bytes as they stream in (an [`std::io::Write`] sink, so a
/// gzip decoder can feed it): checks every line and hands each session on to `entries` as
/// [`ENTRY_BYTES`] bytes, keeping only the sections' headers. The first refusal stops the stream.
pub struct StateDecoder<'a, W: Write> {
    expected: Expected<'a>,
    entries: W,
    handed_on: u64,
    line: Vec<u8>,
    lines: u64,
    header: Option<ScopeHeader>,
    sections: Vec<Section>,
    open: Option<Open>,
    refused: Option<Refusal>,
}

impl<'a, W: Write> StateDecoder<'a, W> {
    pub fn new(expected: Expected<'a>, entries: W) -> Self {
        StateDecoder {
            expected,
            entries,
            handed_on: 0,
            line: Vec::new(),
            lines: 0,
            header: None,
            sections: Vec::new(),
            open: None,
            refused: None,
        }
    }

    /// The header, the sections and the sink, once every byte is in; or why the object is refused.
    pub fn finish(mut self) -> Result<(ScopeHeader, Vec<Section>, W), Refusal> {
        if let Some(refused) = self.refused.take() {
            return Err(refused);
        }
        if !self.line.is_empty() {
            return Err(corrupt("its last line has no end: the object is truncated"));
        }
        let header = self.header.ok_or_else(|| corrupt("it is empty"))?;
        let open = self.open.as_ref().map_or(0, |open| open.remaining);
        if open > 0 || self.sections.len() as u64 != header.sections {
            return Err(corrupt(format!(
                "it ends after {} of {} sections, {open} sessions short: the object is truncated",
                self.sections.len(),
                header.sections
            )));
        }
        Ok((header, self.sections, self.entries))
    }

    fn take_line(&mut self, line: &[u8]) -> Result<(), Refusal> {
        self.lines += 1;
        let number = self.lines;
        let Some(header) = &self.header else {
            self.header = Some(self.read_header(line)?);
            return Ok(());
        };
        match &mut self.open {
            Some(open) if open.remaining > 0 => {
                let (id, word) = entry(line).ok_or_else(|| corrupt(format!("line {number} is not a session entry")))?;
                if open.last.is_some_and(|last| last >= id) {
                    return Err(corrupt(format!("line {number} is out of order")));
                }
                open.last = Some(id);
                open.remaining -= 1;
                self.entries.write_all(&entry_bytes(id, word)).map_err(|e| corrupt(format!("line {number}: {e}")))?;
                self.handed_on += 1;
                Ok(())
            }
            _ => {
                if self.sections.len() as u64 == header.sections {
                    return Err(corrupt(format!(
                        "line {number} is past the {} sections its header says",
                        header.sections
                    )));
                }
                let section: SectionHeader = serde_json::from_slice(line)
                    .map_err(|e| corrupt(format!("line {number} is not a section header: {e}")))?;
                if self.sections.last().is_some_and(|last| last.header.listing >= section.listing) {
                    return Err(corrupt(format!("line {number}: the section of {} is out of order", section.listing)));
                }
                self.open = Some(Open { remaining: section.sessions, last: None });
                self.sections.push(Section { header: section, first: self.handed_on });
                Ok(())
            }
        }
    }

    fn read_header(&self, line: &[u8]) -> Result<ScopeHeader, Refusal> {
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
        let header: ScopeHeader =
            serde_json::from_value(json).map_err(|e| corrupt(format!("its header does not decode: {e}")))?;
        let scope = self.expected.scope;
        if (header.service.as_str(), header.account_id.as_str(), header.region.as_str())
            != (scope.service.as_str(), scope.account_id.as_str(), scope.region.as_str())
        {
            return Err(corrupt(format!(
                "it names {} {} {}, not this scope",
                header.service, header.account_id, header.region
            )));
        }
        if header.generation != self.expected.generation {
            return Err(Refusal::Stale { found: header.generation, vouched: self.expected.generation.into() });
        }
        Ok(header)
    }

    fn refuse(&mut self, refusal: Refusal) -> std::io::Error {
        let error = std::io::Error::other(refusal.to_string());
        self.refused = Some(refusal);
        error
    }
}

impl<W: Write> Write for StateDecoder<'_, W> {
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
            if let Err(refusal) = taken {
                return Err(self.refuse(refusal));
            }
            rest = &rest[end + 1..];
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_LINE {
            return Err(self.refuse(corrupt(format!("a line runs past {MAX_LINE} bytes"))));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.entries.flush()
    }
}

/// The object's gzip'd bytes into a [`StateDecoder`]: what a read streams into.
pub struct StateReader<'a, W: Write> {
    gunzip: flate2::write::GzDecoder<StateDecoder<'a, W>>,
}

impl<'a, W: Write + Send> StateReader<'a, W> {
    pub fn new(expected: Expected<'a>, entries: W) -> Self {
        StateReader { gunzip: flate2::write::GzDecoder::new(StateDecoder::new(expected, entries)) }
    }

    /// Where the object's bytes go.
    pub fn sink(&mut self) -> &mut (dyn Write + Send + 'a)
    where
        W: 'a,
    {
        &mut self.gunzip
    }

    /// The header, the sections and the sink, once the read has ended (`read`: how it ended);
    /// the decoder's refusal comes first, as it is what stopped the read.
    #[allow(clippy::type_complexity)]
    pub fn finish<E: std::fmt::Display>(
        mut self,
        read: Result<(), E>,
    ) -> Result<(ScopeHeader, Vec<Section>, W), Refusal> {
        let ended = read.map_err(|e| e.to_string()).and_then(|()| self.gunzip.try_finish().map_err(|e| e.to_string()));
        if let Some(refusal) = self.gunzip.get_mut().refused.take() {
            return Err(refusal);
        }
        ended.map_err(|e| corrupt(format!("it is not whole gzip, or could not be read whole ({e})")))?;
        let decoder = self.gunzip.finish().map_err(|e| corrupt(format!("it is not whole gzip ({e})")))?;
        decoder.finish()
    }
}

/// A session's line: `"<16 hex digits of id><12 of word>"`.
fn entry(line: &[u8]) -> Option<(u64, u64)> {
    let digits = line.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if digits.len() != ENTRY_DIGITS || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    Some((u64::from_str_radix(&text[..16], 16).ok()?, u64::from_str_radix(&text[16..], 16).ok()?))
}

#[cfg(test)]
mod tests {
    use flate2::write::{GzDecoder, GzEncoder};
    use flate2::Compression;

    use super::*;
    use crate::model::ServiceId;

    fn scope() -> Scope {
        Scope { service: ServiceId::IvsStreamSessions, account_id: "111122223333".into(), region: "us-west-2".into() }
    }

    fn entries(n: u64, salt: u64) -> Vec<(u64, u64)> {
        let mut all: Vec<(u64, u64)> =
            (1..=n).map(|i| ((i ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15), (i << 4) | 1)).collect();
        all.sort_unstable();
        all
    }

    fn section(listing: &str, kind: SectionKind, sessions: usize) -> SectionHeader {
        let run = (kind == SectionKind::Carry).then(|| "r9".to_owned());
        SectionHeader { listing: listing.into(), kind, run, sessions: sessions as u64 }
    }

    /// An object's bytes: its header, then each section and its entries, gzip'd.
    fn object(header: &ScopeHeader, sections: &[(SectionHeader, Vec<(u64, u64)>)]) -> Vec<u8> {
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        writeln!(gzip, "{}", header.line()).unwrap();
        for (section, entries) in sections {
            writeln!(gzip, "{}", section.line()).unwrap();
            for &(id, word) in entries {
                writeln!(gzip, "{}", entry_line(id, word)).unwrap();
            }
        }
        gzip.finish().unwrap()
    }

    fn header(generation: &str, sections: usize) -> ScopeHeader {
        ScopeHeader::new(&scope(), generation, "r9", 0, sections as u64)
    }

    type Decoded = (Vec<SectionHeader>, Vec<Vec<(u64, u64)>>);

    /// Decodes `body` as the run does: gunzipped into the decoder in chunks of `chunk` bytes,
    /// the entries into a vector; then each section's entries found by its index.
    fn decode(body: &[u8], generation: &str, chunk: usize) -> Result<Decoded, Refusal> {
        let scope = scope();
        let mut reader = StateReader::new(Expected { scope: &scope, generation }, Vec::new());
        let read = body.chunks(chunk).try_for_each(|piece| reader.sink().write_all(piece));
        let (_, sections, bytes) = reader.finish(read)?;
        let entries = sections
            .iter()
            .map(|s| {
                let at = s.first as usize * ENTRY_BYTES;
                let end = at + s.header.sessions as usize * ENTRY_BYTES;
                bytes[at..end].chunks(ENTRY_BYTES).map(entry_of).collect()
            })
            .collect();
        Ok((sections.into_iter().map(|s| s.header).collect(), entries))
    }

    fn two_sections() -> Vec<(SectionHeader, Vec<(u64, u64)>)> {
        let (a, b) = (entries(3_000, 0), entries(40, 7));
        vec![
            (section("arn:channel/a", SectionKind::State, a.len()), a),
            (section("arn:channel/b", SectionKind::Carry, b.len()), b),
        ]
    }

    #[test]
    fn sections_come_back_whole_whatever_the_chunks_they_stream_in() {
        let sections = two_sections();
        let body = object(&header("g1", 2), &sections);
        for chunk in [1, 7, 8192, body.len()] {
            let (headers, entries) = decode(&body, "g1", chunk).unwrap();
            assert_eq!(headers, sections.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(), "chunks of {chunk}");
            assert_eq!(entries, sections.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(), "chunks of {chunk}");
        }
        assert!(body.len() < 3_040 * 16, "{} bytes", body.len());
        assert_eq!(entry_of(&entry_bytes(u64::MAX, (1 << 48) - 1)), (u64::MAX, (1 << 48) - 1));
    }

    #[test]
    fn an_object_of_another_generation_is_stale_and_of_another_version_refused_as_such() {
        let body = object(&header("g1", 2), &two_sections());
        assert_eq!(decode(&body, "g2", 64).unwrap_err(), Refusal::Stale { found: "g1".into(), vouched: "g2".into() });
        let mut other = header("g1", 2);
        other.version = VERSION + 1;
        let refused = decode(&object(&other, &two_sections()), "g1", 64).unwrap_err();
        assert!(matches!(refused, Refusal::OtherVersion(_)), "{refused}");
        assert!(refused.to_string().contains(&format!("version {}", VERSION + 1)), "{refused}");
    }

    #[test]
    fn a_damaged_object_is_corrupt_and_says_where() {
        let sections = two_sections();
        let whole = object(&header("g1", 2), &sections);
        let mut unsorted = sections.clone();
        unsorted[0].1.swap(0, 1);
        let mut swapped = sections.clone();
        swapped.swap(0, 1);
        let mut long = sections.clone();
        long[1].0.sessions = 39;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated", whole[..whole.len() / 2].to_vec(), ""),
            ("short", object(&header("g1", 3), &sections), "after 2 of 3 sections"),
            ("a session more than said", object(&header("g1", 2), &long), "line 3043 is past the 2 sections"),
            ("unsorted sessions", object(&header("g1", 2), &unsorted), "line 4 is out of order"),
            ("unsorted sections", object(&header("g1", 2), &swapped), "the section of arn:channel/a is out of order"),
            ("not gzip", b"{\"format\":".to_vec(), "gzip"),
            (
                "another scope",
                object(&ScopeHeader::new(&Scope { region: "eu-central-1".into(), ..scope() }, "g1", "r9", 0, 0), &[]),
                "eu-central-1",
            ),
        ];
        for (case, body, says) in cases {
            let refused = decode(&body, "g1", 100).unwrap_err();
            assert!(matches!(refused, Refusal::Corrupt(_)), "{case}: {refused}");
            assert!(refused.to_string().contains(says), "{case}: {refused}");
        }
        let mut text = Vec::new();
        let mut gunzip = GzDecoder::new(&mut text);
        gunzip.write_all(&object(&header("g1", 1), &sections[1..])).unwrap();
        gunzip.finish().unwrap();
        let at = text.len() - 5;
        text[at] = b'x';
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        gzip.write_all(&text).unwrap();
        let refused = decode(&gzip.finish().unwrap(), "g1", 100).unwrap_err();
        assert_eq!(refused, Refusal::Corrupt("line 42 is not a session entry".into()));
    }

    #[test]
    fn a_scope_has_one_key_under_the_state_prefix() {
        let key = state_object_key("state", &scope());
        assert_eq!(key, "state/listings/ivs-stream-sessions/111122223333.us-west-2.states.ndjson.gz");
    }
}
