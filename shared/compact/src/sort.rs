//! An external sort of a day's lines by (account, region, session, observation time, run): lines
//! are kept in memory up to a budget, sorted and spilled to a run file in the temporary
//! directory; the run files are then merged, a line at a time from each. Memory is the budget
//! plus one line per run file, whatever the day's size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use session_archiver::{Error, Result};

/// Where a row sorts: the Parquet's order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    pub account_id: String,
    pub region: String,
    /// Empty in the runs.
    pub session_id: String,
    /// `snapshot_at` (`started_at` in the runs), microseconds.
    pub observed_at: i64,
    pub run_id: String,
}

impl SortKey {
    fn memory(&self) -> usize {
        self.account_id.len() + self.region.len() + self.session_id.len() + self.run_id.len() + 8
    }
}

/// Bytes a kept line costs besides its text and its key's: the two `String`s and the tuple.
const LINE_OVERHEAD: usize = 128;

/// Lines sorted in memory up to a budget, spilled in sorted runs.
pub struct ExternalSort {
    budget: usize,
    kept: Vec<(SortKey, String)>,
    kept_bytes: usize,
    runs: Vec<RunFile>,
    lines: u64,
}

impl ExternalSort {
    /// `budget`: the bytes of lines kept in memory before they are spilled.
    pub fn new(budget: usize) -> Self {
        ExternalSort { budget, kept: Vec::new(), kept_bytes: 0, runs: Vec::new(), lines: 0 }
    }

    pub fn push(&mut self, key: SortKey, line: String) -> Result<()> {
        self.kept_bytes += key.memory() + line.len() + LINE_OVERHEAD;
        self.kept.push((key, line));
        self.lines += 1;
        if self.kept_bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The run files written so far.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// Sorts what is kept and writes it to a new run file.
    pub fn spill(&mut self) -> Result<()> {
        if self.kept.is_empty() {
            return Ok(());
        }
        self.kept.sort_unstable();
        let (run, file) = RunFile::create()?;
        let mut out = BufWriter::new(file);
        for (key, line) in self.kept.drain(..) {
            write_record(&mut out, &key, &line).map_err(|e| run.error("write", &e))?;
        }
        out.flush().map_err(|e| run.error("write", &e))?;
        self.kept_bytes = 0;
        // The sorted vector's capacity goes too: it is the budget's worth.
        self.kept = Vec::new();
        self.runs.push(run);
        Ok(())
    }

    /// Every line pushed, in key order.
    pub fn merge(mut self) -> Result<Merge> {
        self.spill()?;
        let mut heads = BinaryHeap::new();
        let mut readers = Vec::with_capacity(self.runs.len());
        for (index, run) in self.runs.iter().enumerate() {
            let file = File::open(&run.path).map_err(|e| run.error("open", &e))?;
            let mut reader = BufReader::with_capacity(64 * 1024, file);
            if let Some((key, line)) = read_record(&mut reader).map_err(|e| run.error("read", &e))? {
                heads.push(Reverse((key, index, line)));
            }
            readers.push(reader);
        }
        Ok(Merge { runs: self.runs, readers, heads })
    }
}

/// The merge of the run files.
pub struct Merge {
    runs: Vec<RunFile>,
    readers: Vec<BufReader<File>>,
    heads: BinaryHeap<Reverse<(SortKey, usize, String)>>,
}

impl Merge {
    /// The next line in key order.
    pub fn next_line(&mut self) -> Result<Option<(SortKey, String)>> {
        let Some(Reverse((key, index, line))) = self.heads.pop() else { return Ok(None) };
        let run = &self.runs[index];
        if let Some((next, text)) = read_record(&mut self.readers[index]).map_err(|e| run.error("read", &e))? {
            self.heads.push(Reverse((next, index, text)));
        }
        Ok(Some((key, line)))
    }
}

/// A sorted run in the temporary directory, removed when dropped.
struct RunFile {
    path: PathBuf,
}

impl RunFile {
    /// A new run file, and the file to write it through.
    fn create() -> Result<(Self, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("compaction-{}-{}.run", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        let file = File::create(&path).map_err(|e| sort_error(&path, "create", &e))?;
        Ok((RunFile { path }, file))
    }

    fn error(&self, what: &str, err: &std::io::Error) -> Error {
        sort_error(&self.path, what, err)
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn sort_error(path: &std::path::Path, what: &str, err: &std::io::Error) -> Error {
    Error::Config(format!(
        "cannot {what} the sort's run file {} (the temporary directory must be writable, with room for the day's lines): {err}",
        path.display()
    ))
}

/// A record of a run file: each field as its length (u32, little-endian) and bytes; the time as
/// 8 bytes.
fn write_record(out: &mut impl Write, key: &SortKey, line: &str) -> std::io::Result<()> {
    for text in [&key.account_id, &key.region, &key.session_id, &key.run_id] {
        write_text(out, text)?;
    }
    out.write_all(&key.observed_at.to_le_bytes())?;
    write_text(out, line)
}

fn write_text(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    let len = u32::try_from(text.len()).map_err(|_| std::io::Error::other("a line of 4 GiB or more"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(text.as_bytes())
}

/// The next record, `None` at the end of the file.
fn read_record(input: &mut impl Read) -> std::io::Result<Option<(SortKey, String)>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let account_id = read_text(input, u32::from_le_bytes(len))?;
    let region = read_text_prefixed(input)?;
    let session_id = read_text_prefixed(input)?;
    let run_id = read_text_prefixed(input)?;
    let mut at = [0u8; 8];
    input.read_exact(&mut at)?;
    let line = read_text_prefixed(input)?;
    Ok(Some((SortKey { account_id, region, session_id, observed_at: i64::from_le_bytes(at), run_id }, line)))
}

fn read_text_prefixed(input: &mut impl Read) -> std::io::Result<String> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    read_text(input, u32::from_le_bytes(len))
}

fn read_text(input: &mut impl Read, len: u32) -> std::io::Result<String> {
    let mut bytes = vec![0u8; len as usize];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, session: &str, at: i64) -> SortKey {
        SortKey {
            account_id: account.into(),
            region: "eu-west-1".into(),
            session_id: session.into(),
            observed_at: at,
            run_id: format!("run-{at}"),
        }
    }

    fn drain(mut merge: Merge) -> Vec<(SortKey, String)> {
        let mut out = Vec::new();
        while let Some(next) = merge.next_line().unwrap() {
            out.push(next);
        }
        out
    }

    #[test]
    fn lines_come_out_by_account_region_session_and_time_whatever_the_spills() {
        // GIVEN lines pushed out of order, with a budget that spills every few lines
        let mut sort = ExternalSort::new(600);
        let mut pushed = Vec::new();
        for at in (0..20).rev() {
            for (account, session) in [("222222222222", "b"), ("111111111111", "z"), ("111111111111", "a")] {
                let k = key(account, session, at);
                let line = format!("{{\"{session}\":{at}}}");
                pushed.push((k.clone(), line.clone()));
                sort.push(k, line).unwrap();
            }
        }
        assert!(sort.spilled_runs() > 3, "{} runs", sort.spilled_runs());
        // WHEN they are merged
        let merged = drain(sort.merge().unwrap());
        // THEN each comes out once, in key order
        pushed.sort();
        assert_eq!(merged, pushed);
        assert_eq!(merged[0].0, key("111111111111", "a", 0));
    }

    #[test]
    fn a_sort_that_fits_in_memory_merges_one_run_and_an_empty_one_none() {
        let mut sort = ExternalSort::new(usize::MAX);
        sort.push(key("1", "b", 1), "b".into()).unwrap();
        sort.push(key("1", "a", 2), "a".into()).unwrap();
        assert_eq!(sort.spilled_runs(), 0);
        let lines: Vec<String> = drain(sort.merge().unwrap()).into_iter().map(|(_, line)| line).collect();
        assert_eq!(lines, ["a", "b"]);
        assert!(drain(ExternalSort::new(10).merge().unwrap()).is_empty());
    }

    #[test]
    fn run_files_are_removed_once_merged() {
        let mut sort = ExternalSort::new(1);
        sort.push(key("1", "a", 1), "a".into()).unwrap();
        let path = sort.runs[0].path.clone();
        assert!(path.exists());
        drop(drain(sort.merge().unwrap()));
        assert!(!path.exists(), "{}", path.display());
    }
}
