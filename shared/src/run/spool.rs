//! A scratch file in the function's temporary directory (Lambda's `/tmp`): a part's listing
//! states spooled there, so a million sessions' state costs disk, not memory. Removed when
//! dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Sessions' entries, appended, then read back by offset.
pub(super) struct Spool {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: File,
    len: u64,
}

impl Spool {
    /// A new empty spool in `dir`, named after `name` (the run) and a random suffix.
    pub(super) fn create(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(format!("session-archiver-{name}-{:016x}.spool", fastrand::u64(..)));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| spool_error(&path, "create", e))?;
        let reader = file.try_clone().map_err(|e| spool_error(&path, "open", e))?;
        Ok(Spool { path, writer: BufWriter::with_capacity(64 * 1024, file), reader, len: 0 })
    }

    /// Bytes appended so far: where the next append starts.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).map_err(|e| spool_error(&self.path, "write", e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// `into.len()` bytes from `offset`, once appended.
    pub(super) fn read_at(&mut self, offset: u64, into: &mut [u8]) -> Result<()> {
        self.writer.flush().map_err(|e| spool_error(&self.path, "write", e))?;
        self.reader.read_exact_at(into, offset).map_err(|e| spool_error(&self.path, "read", e))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn spool_error(path: &Path, what: &str, err: std::io::Error) -> Error {
    Error::Config(format!(
        "could not {what} the listing state spool {} ({err}): the function needs a writable temporary directory (TMPDIR, /tmp in Lambda) with room for the state, about 14 bytes a session",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_appended_are_read_back_by_offset_and_the_file_goes_with_the_spool() {
        let mut spool = Spool::create(&std::env::temp_dir(), "test").unwrap();
        spool.append(b"hello ").unwrap();
        let at = spool.len();
        spool.append(b"world").unwrap();
        let mut word = [0u8; 5];
        spool.read_at(at, &mut word).unwrap();
        assert_eq!(&word, b"world");
        let path = spool.path.clone();
        assert!(path.exists());
        drop(spool);
        assert!(!path.exists(), "removed with the spool");
    }

    #[test]
    fn an_unwritable_directory_is_named_in_the_error() {
        let err = Spool::create(Path::new("/proc/no-such-dir"), "test").err().unwrap().to_string();
        assert!(err.contains("/proc/no-such-dir") && err.contains("writable temporary directory"), "{err}");
    }
}
