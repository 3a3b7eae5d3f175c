//! A simulated day on the local stand-ins (`make demo`): the emulator's clock and the function
//! binaries' clock moved together through a day, so the history holds a day of runs at their
//! schedules' times, with sessions starting and ending between them. The binaries are the real
//! ones, unchanged: their clock is moved from outside by libfaketime (Debian's `faketime`, which
//! `make faketime` installs), preloaded with a file holding the offset from the real clock, read
//! again at every call. The day simulated is in the past, so a function's deadline (real time
//! plus its timeout) only grows.

use std::path::{Path, PathBuf};

use session_archiver::ServiceId;

/// Where Debian's libfaketime is, on any architecture.
pub fn libfaketime() -> std::io::Result<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")?
        .filter_map(Result::ok)
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.is_file());
    found.ok_or_else(|| {
        let why = "libfaketime is not installed: `make faketime` installs Debian's faketime (apt-get)";
        std::io::Error::new(std::io::ErrorKind::NotFound, why)
    })
}

/// The functions' clock: the offset from the real clock, in a file their libfaketime reads.
pub struct FakeClock {
    file: PathBuf,
    library: PathBuf,
}

impl FakeClock {
    /// A clock at the real time, its file in `dir`.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        let clock = FakeClock { file: dir.join("faketime-offset"), library: libfaketime()? };
        std::fs::write(&clock.file, "+0\n")?;
        Ok(clock)
    }

    /// The environment that puts a process on this clock (its monotonic clock stays real: timers
    /// and timeouts run as they would).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", self.library.display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            ("FAKETIME_NO_CACHE", "1".to_owned()),
            ("DONT_FAKE_MONOTONIC", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Sets the clock to `epoch` (seconds) now; from there it runs with the real one.
    pub fn set(&self, epoch: i64, real_now: i64) -> std::io::Result<()> {
        std::fs::write(&self.file, format!("{:+}\n", epoch - real_now))
    }
}

/// A service's schedule in minutes: its parameter's default in `template.yaml` (`rate(N minutes)`).
pub fn schedule_minutes(template: &str, service: ServiceId) -> Result<i64, String> {
    let name = format!("{}Schedule", crate::pascal_case(service));
    let docs = yaml_rust2::YamlLoader::load_from_str(template).map_err(|e| format!("template.yaml: {e}"))?;
    let default = docs[0]["Parameters"][name.as_str()]["Default"]
        .as_str()
        .ok_or_else(|| format!("template.yaml: no default for parameter {name}"))?;
    rate_minutes(default).ok_or_else(|| format!("{name}: `{default}` is not rate(N minutes)"))
}

fn rate_minutes(rate: &str) -> Option<i64> {
    let inner = rate.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.split_once(' ')?;
    let n: i64 = n.parse().ok()?;
    match unit {
        "minute" | "minutes" => Some(n),
        "hour" | "hours" => Some(n * 60),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_read_from_the_template_s_defaults() {
        let template =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")).unwrap();
        assert_eq!(schedule_minutes(&template, ServiceId::WorkspacesPoolSessions), Ok(5));
        assert_eq!(schedule_minutes(&template, ServiceId::GameliftStreamSessions), Ok(15));
        assert_eq!(rate_minutes("rate(1 hour)"), Some(60));
        assert_eq!(rate_minutes("cron(0 * * * ? *)"), None);
    }
}
