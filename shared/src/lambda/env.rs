//! A program's environment, read once at cold start: each variable trimmed (empty as unset) and
//! checked as it is read, a bad value refused naming the variable. Every program (the archiving
//! functions, the planner, the compactor) reads its configuration through [`Vars`].

use std::time::Duration;

use crate::error::quoted;
use crate::error::{Error, Result};
use crate::model::Timestamp;

/// A program's environment, each variable read with its check: trimmed, and empty as unset.
pub struct Vars<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String> {
        self.get(name).ok_or_else(|| Error::Config(format!("{name} is not set")))
    }

    /// A whole number in `range`, `default` when unset.
    pub fn number(&self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64> {
        let Some(text) = self.get(name) else { return Ok(default) };
        let value: u64 =
            text.parse().map_err(|_| Error::Config(format!("{name}={} is not a whole number", quoted(&text))))?;
        if !range.contains(&value) {
            let (start, end) = (range.start(), range.end());
            return Err(Error::Config(format!("{name}={value} is out of range: {start} to {end}")));
        }
        Ok(value)
    }

    pub fn seconds(&self, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<Duration> {
        self.number(name, default, range).map(Duration::from_secs)
    }

    /// A role name or ExternalId: 2 to `limit` of letters, digits and `+=,.@-` (and `:/` in an
    /// ExternalId), as IAM and STS take them.
    pub fn role_word(&self, name: &str, limit: usize) -> Result<Option<String>> {
        let Some(value) = self.get(name) else { return Ok(None) };
        let extra = if limit > 64 { "+=,.@-_:/" } else { "+=,.@-_" };
        if !(2..=limit).contains(&value.len()) || !value.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
        {
            return Err(Error::Config(format!(
                "{name}={} must be 2 to {limit} of letters, digits and {extra}",
                quoted(&value)
            )));
        }
        Ok(Some(value))
    }

    /// A comma-separated list, its items trimmed; `None` when unset, an error when it lists nothing.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>> {
        let Some(text) = self.get(name) else { return Ok(None) };
        let items: Vec<String> =
            text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect();
        if items.is_empty() {
            return Err(Error::Config(format!("{name}={} lists nothing", quoted(&text))));
        }
        Ok(Some(items))
    }

    pub fn endpoint(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                Err(Error::Config(format!("{name}={} is not an http(s) URL", quoted(&url))))
            }
            other => Ok(other),
        }
    }

    pub fn table_name(&self) -> Result<String> {
        let name = self.required("TABLE_NAME")?;
        let ok = (3..=255).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(Error::Config(format!(
                "TABLE_NAME={} is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)",
                quoted(&name)
            )));
        }
        Ok(name)
    }

    pub fn bucket_name(&self) -> Result<String> {
        let name = self.required("BUCKET_NAME")?;
        let ok = (3..=63).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(Error::Config(format!(
                "BUCKET_NAME={} is not an S3 bucket name (3-63 of a-z 0-9 - ., starting and ending with a letter or digit)",
                quoted(&name)
            )));
        }
        Ok(name)
    }
}

/// The default first day of the history: the Glue tables' partition projection starts there.
pub const DEFAULT_HISTORY_START: &str = "2024-01-01";

/// `HISTORY_START_DATE`: a day (`YYYY-MM-DD`) from 2000-01-01 on.
pub fn history_start(value: Option<String>) -> Result<Timestamp> {
    let day = value.unwrap_or_else(|| DEFAULT_HISTORY_START.to_owned());
    let start = Timestamp::parse(&format!("{day}T00:00:00Z"))
        .ok()
        .filter(|start| start.day() == day && start.as_str() >= "2000-01-01")
        .ok_or_else(|| {
            Error::Config(format!("HISTORY_START_DATE={} is not a day (YYYY-MM-DD) from 2000-01-01 on", quoted(&day)))
        })?;
    Ok(start)
}

/// An environment of `defaults` with `pairs` over them, for the configurations' tests.
#[cfg(any(test, feature = "testing"))]
pub fn fixture(defaults: &[(&str, &str)], pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut map: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (name, value) in defaults.iter().chain(pairs) {
        map.insert((*name).to_owned(), (*value).to_owned());
    }
    move |name| map.get(name).cloned()
}
