//! One JSON object per line, every column of the service's schema on every line, in schema order,
//! `null` when absent; gzip'd as a stream so memory does not grow with the number of lines.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value as Json;

use crate::model::{Change, Column, ColumnType, SessionRecord, Timestamp, CONTEXT_COLUMNS, HASH_COLUMN};

/// What a run knows that the API does not: when, which run, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunContext {
    pub snapshot_at: Timestamp,
    pub run_id: String,
    pub account_id: String,
    pub region: String,
}

/// The columns a changes line has after the snapshot columns.
pub fn change_columns() -> [Column; 2] {
    [
        Column { name: "change", ty: ColumnType::String, doc: "opened, changed or ended", hashed: false },
        Column { name: "previous_status", ty: ColumnType::String, doc: "status before the change", hashed: false },
    ]
}

fn push_field(out: &mut String, first: &mut bool, name: &str, value: &Json) {
    if !*first {
        out.push(',');
    }
    *first = false;
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
    out.push_str(&value.to_string());
}

/// One history line (no trailing newline): the context columns, the session columns, the hash
/// (`record.record_hash()`, which the caller has already computed), and for changes lines `change`
/// and `previous_status`.
pub fn line(
    ctx: &RunContext,
    record: &SessionRecord,
    record_hash: &str,
    change: Option<(Change, Option<&str>)>,
) -> String {
    let mut out = String::with_capacity(512);
    out.push('{');
    let mut first = true;
    let context = [
        Json::from(ctx.snapshot_at.as_str()),
        Json::from(ctx.run_id.as_str()),
        Json::from(ctx.account_id.as_str()),
        Json::from(ctx.region.as_str()),
    ];
    for (column, value) in CONTEXT_COLUMNS.iter().zip(context.iter()) {
        push_field(&mut out, &mut first, column.name, value);
    }
    for (column, value) in record.session_values() {
        push_field(&mut out, &mut first, column.name, &value);
    }
    push_field(&mut out, &mut first, HASH_COLUMN.name, &Json::from(record_hash));
    if let Some((change, previous)) = change {
        let [change_col, previous_col] = change_columns();
        push_field(&mut out, &mut first, change_col.name, &Json::from(change.as_str()));
        push_field(&mut out, &mut first, previous_col.name, &previous.map_or(Json::Null, Json::from));
    }
    out.push('}');
    out
}

/// A gzip stream of lines whose compressed bytes can be taken out as they fill up (for multipart
/// upload parts): the parts, concatenated, are one valid gzip file.
pub struct GzipLines {
    encoder: GzEncoder<Vec<u8>>,
    lines: u64,
}

impl Default for GzipLines {
    fn default() -> Self {
        GzipLines { encoder: GzEncoder::new(Vec::new(), Compression::default()), lines: 0 }
    }
}

impl GzipLines {
    pub fn push(&mut self, line: &str) {
        // Writing to a Vec cannot fail.
        self.encoder.write_all(line.as_bytes()).expect("write to memory");
        self.encoder.write_all(b"\n").expect("write to memory");
        self.lines += 1;
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Compressed bytes produced so far and not yet taken.
    pub fn buffered(&self) -> usize {
        self.encoder.get_ref().len()
    }

    /// Takes the compressed bytes produced so far once there are at least `min` of them.
    pub fn take_if_at_least(&mut self, min: usize) -> Option<Vec<u8>> {
        (self.buffered() >= min).then(|| std::mem::take(self.encoder.get_mut()))
    }

    /// Ends the stream and returns the compressed bytes not yet taken.
    pub fn finish(self) -> Vec<u8> {
        self.encoder.finish().expect("write to memory")
    }
}

/// Bytes as they stream in (a gzip decoder's output), split into lines without their newlines;
/// the start of a line whose end has not come yet waits here. The history's readers (the
/// compaction, the audit, a churn run's look at the last run's lines) split with it.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Calls `each` with every line `bytes` completes, in order; the first error stops it and is
    /// returned (the rest of `bytes` is dropped).
    pub fn split<E>(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.pending.is_empty() {
                each(&rest[..end])?;
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&rest[..end]);
                each(&line)?;
            }
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Whether no line waits for its end.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The last line's bytes, taken out, when the stream did not end with a newline.
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::MultiGzDecoder;

    use super::*;
    use crate::model::ServiceId;

    fn ctx() -> RunContext {
        RunContext {
            snapshot_at: Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
            run_id: "evt-1".into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    fn record() -> SessionRecord {
        let mut r = SessionRecord::new(ServiceId::IvsStreamSessions, "st-1");
        r.parent_id = Some("arn:aws:ivs:us-east-1:123456789012:channel/abc".into());
        r.status = Some("LIVE".into());
        r.set("has_error_event", false).unwrap();
        r
    }

    #[test]
    fn a_line_has_every_schema_column_in_order_with_nulls() {
        let text = line(&ctx(), &record(), &record().record_hash(), None);
        let names: Vec<&str> = ServiceId::IvsStreamSessions.schema().columns().map(|c| c.name).collect();
        let keys: Vec<String> = text
            .trim_matches(|c| c == '{' || c == '}')
            .split(",\"")
            .map(|kv| kv.trim_start_matches('"').split('"').next().unwrap().to_owned())
            .collect();
        assert_eq!(keys, names);
        let parsed: serde_json::Map<String, Json> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["snapshot_at"], "2026-11-22T10:00:00Z");
        assert_eq!(parsed["started_at"], Json::Null);
        assert_eq!(parsed["user_id"], Json::Null);
        assert_eq!(parsed["has_error_event"], false);
        assert_eq!(parsed["record_hash"], record().record_hash());
    }

    #[test]
    fn a_changes_line_ends_with_change_and_previous_status() {
        let text = line(&ctx(), &record(), &record().record_hash(), Some((Change::Changed, Some("LIVE"))));
        assert!(text.ends_with(r#","change":"changed","previous_status":"LIVE"}"#), "{text}");
        let opened = line(&ctx(), &record(), &record().record_hash(), Some((Change::Opened, None)));
        assert!(opened.ends_with(r#","change":"opened","previous_status":null}"#), "{opened}");
    }

    #[test]
    fn parts_taken_while_streaming_join_into_one_gzip_file() {
        let mut lines = GzipLines::default();
        let mut parts = Vec::new();
        for i in 0..20_000 {
            lines.push(&format!("{{\"n\":{i},\"pad\":\"{}\"}}", mix_text(i)));
            if let Some(part) = lines.take_if_at_least(64 * 1024) {
                parts.push(part);
            }
        }
        assert_eq!(lines.lines(), 20_000);
        parts.push(lines.finish());
        assert!(parts.len() > 2, "the stream was taken in parts");
        let joined: Vec<u8> = parts.concat();
        let mut text = String::new();
        MultiGzDecoder::new(&joined[..]).read_to_string(&mut text).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        assert!(text.lines().last().unwrap().starts_with("{\"n\":19999,"));
    }

    fn mix_text(i: u64) -> String {
        format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    #[test]
    fn lines_split_across_writes_come_whole_and_the_last_waits_for_its_newline() {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        for chunk in [&b"ab"[..], b"c\nd", b"\n\ne", b"f"] {
            let each = |line: &[u8]| {
                lines.push(String::from_utf8(line.to_vec()).unwrap());
                Ok::<_, ()>(())
            };
            buffer.split(chunk, each).unwrap();
        }
        assert_eq!(lines, ["abc", "d", ""]);
        assert!(!buffer.is_empty());
        assert_eq!(buffer.take_rest(), b"ef");
        let stopped = buffer.split(b"x\ny\n", |line| if line == b"x" { Err("refused") } else { Ok(()) });
        assert_eq!(stopped, Err("refused"));
    }
}
