//! The command line: where the history is, which question, which output.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use session_archiver::model::EXPECTED_TIME;
use session_archiver::ServiceId;

use crate::archive::{Archive, ScopeFilter};
use crate::connected::{self, ConnectedFold};
use crate::folds::{ConcurrencyFold, ScopesFold, SummaryFold, Tee};
use crate::output::{render, Format};
use crate::query::{self, Bucket, Filter, MatchFold, Selected};
use crate::record::{format_time, parse_time, AuditLine, RunRecord};
use crate::report::{self, Report, RunsFold};
use crate::{AuditError, Fold, ReadCounts, Result, CHANGES, SNAPSHOTS};

/// Answers "who was connected when" from the session archiver's history in S3 (or a local copy).
#[derive(Debug, Parser)]
#[command(name = "session-audit", version)]
pub struct Cli {
    /// The history bucket (reads S3; credentials, profile and region as the AWS CLI finds them).
    #[arg(long, global = true, conflicts_with = "dir")]
    pub bucket: Option<String>,
    /// A local copy of the bucket (`aws s3 sync s3://<bucket> <dir>`), read instead of S3.
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// Key prefix of the history in the bucket (the template's HistoryPrefix).
    #[arg(long, global = true, default_value = "history")]
    pub prefix: String,
    /// S3 endpoint (a local stand-in such as moto).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// AWS profile of the credentials.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region of the bucket.
    #[arg(long, global = true)]
    pub bucket_region: Option<String>,
    /// Print on stderr what each read went through: objects, bytes, row groups skipped.
    #[arg(long, global = true)]
    pub stats: bool,
    /// Credentials a program running the CLI in-process gives (the demo's and the tests', for the
    /// local stand-in), instead of those the AWS CLI would find.
    #[arg(skip)]
    pub credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Range {
    /// Services to read (repeat or comma-separate); all five by default.
    #[arg(long = "service", value_delimiter = ',', value_parser = parse_service)]
    pub services: Vec<ServiceId>,
    /// Start of the time range: RFC 3339 (2026-11-22T10:00:00Z) or a day (2026-11-22). Default: 7 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the time range. Default: now.
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub scope: Where,
}

/// Which accounts and regions of an organization's history to read.
#[derive(Debug, Args)]
pub struct Where {
    /// Only these accounts (repeat or comma-separate); all by default.
    #[arg(long = "account", value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Only these regions (repeat or comma-separate); all by default.
    #[arg(long = "region", value_delimiter = ',')]
    pub regions: Vec<String>,
}

impl Where {
    /// Checks each value, naming a bad one.
    fn check(&self) -> Result<()> {
        for account in &self.accounts {
            if !session_archiver::model::is_account_id(account) {
                return Err(AuditError::Usage(format!("--account `{account}` is not an account id (12 digits)")));
            }
        }
        for region in &self.regions {
            if !session_archiver::model::is_region(region) {
                return Err(AuditError::Usage(format!("--region `{region}` is not a region name like eu-west-1")));
            }
        }
        Ok(())
    }

    /// The scopes asked for, checked.
    fn filter(&self) -> Result<ScopeFilter> {
        self.check()?;
        Ok(ScopeFilter { accounts: self.accounts.clone(), regions: self.regions.clone() })
    }
}

#[derive(Debug, Args)]
pub struct Who {
    /// Only this user's sessions: the clear user id (also matched hashed when a key is given).
    #[arg(long)]
    pub user: Option<String>,
    /// File holding the personal-data key (the PersonalDataKey secret's value), to match hashed user ids.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Only sessions of this parent (pool id, channel ARN, voice connector id).
    #[arg(long)]
    pub parent: Option<String>,
    /// Only sessions observed in this status at any run of the range (not only at their last).
    #[arg(long)]
    pub status: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sessions seen in a time range, with their last observed state.
    Sessions {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        who: Who,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Who was connected when: per user and session, every connected interval (its start and
    /// end, the earliest start and latest end the runs on either side allow, its duration, which
    /// edges are the API's own times) and every gap in the runs next to one, which the history
    /// cannot tell (`unknown`); `--by day`: each user's connected time per day.
    Connected {
        #[arg(long, value_enum, default_value = "interval")]
        by: Per,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        who: Who,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Every observed state of one session, and its transitions.
    Timeline {
        session_id: String,
        #[command(flatten)]
        range: Range,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The sessions active at an instant, per service.
    ActiveAt {
        /// The instant: RFC 3339 or a day.
        at: String,
        #[arg(long = "service", value_delimiter = ',', value_parser = parse_service)]
        services: Vec<ServiceId>,
        #[command(flatten)]
        scope: Where,
        #[command(flatten)]
        who: Who,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Sessions started and ended, peak concurrency and duration percentiles per hour or day.
    Summary {
        #[arg(long, value_enum, default_value = "day")]
        by: By,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        who: Who,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Per service, account and region: sessions, runs that listed it (quiet ones apart), failed
    /// runs and the last one's reason, peak concurrency, when it was last listed, first and last
    /// seen; from the snapshots and the runs dataset, so a scope without sessions, or whose runs
    /// failed, has its row.
    Scopes {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        who: Who,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One self-contained HTML file to send to people who do not run this CLI: per-user timeline
    /// of connected intervals (zoomable to a day), concurrent sessions per service, the scopes
    /// listed and failed per run, top users by connected time, and a table of sessions that
    /// filters and sorts. No network: data and script are inline.
    Report {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        who: Who,
        /// The file to write.
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
        /// How the path written is printed.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Plots: `concurrency`, concurrent sessions over time per service, as SVG and PNG.
    Plot {
        #[arg(value_enum)]
        what: PlotKind,
        #[command(flatten)]
        range: Range,
        /// Output path without extension: writes <out>.svg and <out>.png.
        #[arg(long, default_value = "concurrency")]
        out: PathBuf,
        #[command(flatten)]
        who: Who,
        /// How the paths written are printed.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum By {
    Hour,
    Day,
}

/// A file a command wrote.
#[derive(serde::Serialize)]
struct Written {
    kind: &'static str,
    path: String,
}

/// What `connected` gives a row to.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Per {
    Interval,
    Day,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PlotKind {
    Concurrency,
}

fn parse_service(text: &str) -> Result<ServiceId, String> {
    text.parse::<ServiceId>().map_err(|_| {
        let known: Vec<&str> = ServiceId::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown service `{text}`; one of {}", known.join(", "))
    })
}

fn time(flag: &str, text: &str) -> Result<i64> {
    parse_time(text)
        .ok_or_else(|| AuditError::Usage(format!("{flag} `{text}` is not a time: expected {EXPECTED_TIME}")))
}

impl Range {
    fn bounds(&self, now: i64) -> Result<(i64, i64)> {
        let to = self.to.as_deref().map(|t| time("--to", t)).transpose()?.unwrap_or(now);
        let from = self.from.as_deref().map(|t| time("--from", t)).transpose()?.unwrap_or(to - 7 * 86_400);
        if from > to {
            return Err(AuditError::Usage(format!(
                "the time range is reversed: --from {} is after --to {}",
                format_time(from),
                format_time(to)
            )));
        }
        if to - from > 400 * 86_400 {
            return Err(AuditError::Usage("the time range is over 400 days: narrow it with --from and --to".into()));
        }
        Ok((from, to))
    }
}

fn names(services: &[ServiceId]) -> Vec<&'static str> {
    if services.is_empty() {
        ServiceId::ALL.iter().map(|s| s.as_str()).collect()
    } else {
        services.iter().map(|s| s.as_str()).collect()
    }
}

impl Who {
    fn filter(&self) -> Result<Filter> {
        let mut users = Vec::new();
        if let Some(user) = &self.user {
            users.push(user.clone());
            if let Some(path) = &self.key_file {
                let key = std::fs::read(path)
                    .map_err(|e| AuditError::Usage(format!("--key-file {}: {e}", path.display())))?;
                let key = key.strip_suffix(b"\n").unwrap_or(&key);
                users.push(session_archiver::personal::keyed_hash(key, user));
            }
        } else if self.key_file.is_some() {
            return Err(AuditError::Usage("--key-file needs --user: it is used to match a user's hashed id".into()));
        }
        Ok(Filter { users, parent: self.parent.clone(), status: self.status.clone() })
    }

    /// The filters as typed, to say what a report covers (the key file's path is not shown).
    fn described(&self) -> Vec<String> {
        let given = [("--user", &self.user), ("--parent", &self.parent), ("--status", &self.status)];
        given.into_iter().filter_map(|(flag, value)| value.as_ref().map(|v| format!("{flag} {v}"))).collect()
    }
}

/// The columns of a list of sessions (`sessions`, `active-at`).
const SESSION_COLUMNS: [&str; 10] = [
    "service",
    "session_id",
    "parent_id",
    "user_id",
    "status",
    "started_at",
    "ended_at",
    "first_seen",
    "last_seen",
    "observations",
];

const CONNECTED_COLUMNS: [&str; 14] = [
    "user_id",
    "service",
    "account_id",
    "region",
    "session_id",
    "state",
    "start",
    "end",
    "duration_seconds",
    "start_earliest",
    "end_latest",
    "longest_seconds",
    "exact",
    "open",
];

const USER_DAY_COLUMNS: [&str; 6] =
    ["user_id", "day", "connected", "connected_seconds", "unknown_seconds", "intervals"];

const SUMMARY_COLUMNS: [&str; 8] =
    ["bucket", "service", "started", "ended", "peak_concurrency", "duration_p50", "duration_p90", "duration_p99"];

const SCOPES_COLUMNS: [&str; 12] = [
    "service",
    "account_id",
    "region",
    "sessions",
    "runs",
    "quiet_runs",
    "failed_runs",
    "peak_concurrency",
    "last_listed_at",
    "first_seen",
    "last_seen",
    "last_error",
];

impl Cli {
    /// Where the history is.
    pub async fn archive(&self) -> Result<Archive> {
        match (&self.bucket, &self.dir) {
            (_, Some(dir)) => {
                if !dir.is_dir() {
                    return Err(AuditError::Archive(format!("{} is not a directory", dir.display())));
                }
                Ok(Archive::Dir { root: dir.clone(), prefix: self.prefix.clone() })
            }
            (Some(bucket), None) => {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
                if let Some(profile) = &self.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(region) = &self.bucket_region {
                    loader = loader.region(aws_config::Region::new(region.clone()));
                }
                if let Some(url) = &self.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                if let Some(credentials) = &self.credentials {
                    loader = loader.credentials_provider(credentials.clone());
                }
                let sdk = loader.load().await;
                let config =
                    aws_sdk_s3::config::Builder::from(&sdk).force_path_style(self.endpoint_url.is_some()).build();
                let client = aws_sdk_s3::Client::from_conf(config);
                client.head_bucket().bucket(bucket).send().await.map_err(|e| {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    let why = match status {
                        Some(404) => "no such bucket".to_owned(),
                        Some(403) => "access denied".to_owned(),
                        _ => crate::archive::describe(&e),
                    };
                    AuditError::Archive(format!("bucket {bucket}: {why}"))
                })?;
                Ok(Archive::S3 { client, bucket: bucket.clone(), prefix: self.prefix.clone() })
            }
            (None, None) => Err(AuditError::Usage("say where the history is: --bucket <name> or --dir <path>".into())),
        }
    }

    /// The lines of `kinds` for `services` in the partitions of `[from, to]`, in the accounts and
    /// regions asked for, kept when `keep` says so.
    async fn lines(
        &self,
        kinds: &[&str],
        services: &[ServiceId],
        range: (i64, i64),
        scope: &Where,
        keep: &dyn Fn(&AuditLine) -> bool,
    ) -> Result<Vec<AuditLine>> {
        let mut lines = Vec::new();
        let mut each = |line: AuditLine| {
            if keep(&line) {
                lines.push(line);
            }
        };
        self.stream(kinds, services, range, scope, &mut each).await?;
        Ok(lines)
    }

    /// Gives `fold` every line of `kinds` for `services` in the partitions of `[from, to]`, in
    /// the accounts and regions asked for.
    async fn stream(
        &self,
        kinds: &[&str],
        services: &[ServiceId],
        range: (i64, i64),
        scope: &Where,
        fold: &mut dyn Fold,
    ) -> Result<()> {
        let scopes = scope.filter()?;
        let counts = crate::stream(&self.archive().await?, kinds, &names(services), range, &scopes, fold).await?;
        self.report(kinds, &counts);
        Ok(())
    }

    /// `--stats`: what a read went through, on stderr.
    fn report(&self, kinds: &[&str], counts: &ReadCounts) {
        if self.stats {
            eprintln!(
                "read {}: {} objects, {} bytes; {} of {} row groups skipped by their statistics",
                kinds.join("+"),
                counts.objects,
                counts.bytes,
                counts.row_groups_skipped,
                counts.row_groups
            );
        }
    }

    /// Gives `fold` the snapshots of the range of the sessions `filter` keeps: a session is kept
    /// by any of its lines (a status it was in, a user it was looked up with), so a filter reads
    /// the range twice, first to find them.
    async fn fold_sessions(
        &self,
        range: &Range,
        bounds: (i64, i64),
        filter: &Filter,
        fold: &mut dyn Fold,
    ) -> Result<()> {
        if filter.is_everything() {
            return self.stream(&[SNAPSHOTS], &range.services, bounds, &range.scope, fold).await;
        }
        let mut matching = MatchFold::new(filter);
        self.stream(&[SNAPSHOTS], &range.services, bounds, &range.scope, &mut matching).await?;
        let kept = matching.finish();
        let mut selected = Selected { kept: &kept, fold };
        self.stream(&[SNAPSHOTS], &range.services, bounds, &range.scope, &mut selected).await
    }

    /// Gives `each` the runs dataset's lines of the range, in the accounts and regions asked for.
    async fn runs(&self, range: &Range, bounds: (i64, i64), each: &mut dyn FnMut(RunRecord)) -> Result<()> {
        let scopes = range.scope.filter()?;
        let archive = self.archive().await?;
        let counts = crate::stream_runs(&archive, &names(&range.services), bounds, &scopes, each).await?;
        self.report(&[crate::RUNS], &counts);
        Ok(())
    }

    /// Runs the command; returns what to print on stdout.
    pub async fn run(&self, now: i64) -> Result<String> {
        match &self.command {
            Command::Sessions { range, who, format } => self.sessions(range, who, *format, now).await,
            Command::Connected { by, range, who, format } => self.connected(*by, range, who, *format, now).await,
            Command::Timeline { session_id, range, format } => self.timeline(session_id, range, *format, now).await,
            Command::ActiveAt { at, services, scope, who, format } => {
                let at = time("the instant", at)?;
                let filter = who.filter()?;
                let lines = self.lines(&[SNAPSHOTS], services, (at - 86_400, at), scope, &|_| true).await?;
                Ok(render(&query::active_at(&lines, at, &filter), &SESSION_COLUMNS, *format))
            }
            Command::Summary { by, range, who, format } => {
                let bounds = range.bounds(now)?;
                let bucket = match by {
                    By::Hour => Bucket::Hour,
                    By::Day => Bucket::Day,
                };
                let mut fold = SummaryFold::new(bounds.0, bounds.1);
                self.fold_sessions(range, bounds, &who.filter()?, &mut fold).await?;
                Ok(render(&query::summary_of(fold, bucket), &SUMMARY_COLUMNS, *format))
            }
            Command::Scopes { range, who, format } => {
                let bounds = range.bounds(now)?;
                let filter = who.filter()?;
                let mut fold = ScopesFold::new(bounds.0, bounds.1);
                self.runs(range, bounds, &mut |run| fold.add_run(&run)).await?;
                self.fold_sessions(range, bounds, &filter, &mut fold).await?;
                Ok(render(&query::scopes_of(fold), &SCOPES_COLUMNS, *format))
            }
            Command::Report { range, who, out, format } => self.html_report(range, who, out, *format, now).await,
            Command::Plot { what: PlotKind::Concurrency, range, out, who, format } => {
                let bounds = range.bounds(now)?;
                let mut fold = ConcurrencyFold::new(bounds.0, bounds.1);
                self.fold_sessions(range, bounds, &who.filter()?, &mut fold).await?;
                let (svg, png) = crate::plot::concurrency(&fold.finish(), bounds, out)?;
                let written =
                    [("svg", svg), ("png", png)].map(|(kind, path)| Written { kind, path: path.display().to_string() });
                Ok(render(&written, &["kind", "path"], *format))
            }
        }
    }

    /// The sessions of the range, folded as the lines stream by: what it holds grows with the
    /// sessions, not with the range.
    async fn sessions(&self, range: &Range, who: &Who, format: Format, now: i64) -> Result<String> {
        let (from, to) = range.bounds(now)?;
        let filter = who.filter()?;
        let mut fold = query::SessionsFold::new(from, to);
        self.stream(&[SNAPSHOTS], &range.services, (from, to), &range.scope, &mut |line: AuditLine| fold.add(&line))
            .await?;
        Ok(render(&fold.finish(&filter), &SESSION_COLUMNS, format))
    }

    /// The connected intervals of the range, from its runs and its snapshots, folded as they
    /// stream by.
    async fn connected(&self, by: Per, range: &Range, who: &Who, format: Format, now: i64) -> Result<String> {
        let (from, to) = range.bounds(now)?;
        let filter = who.filter()?;
        let mut fold = ConnectedFold::new(from, to);
        self.runs(range, (from, to), &mut |run| fold.add_run(&run)).await?;
        fold.runs_read();
        self.stream(&[SNAPSHOTS], &range.services, (from, to), &range.scope, &mut fold).await?;
        let found = fold.finish(&filter);
        Ok(match by {
            Per::Interval => render(&connected::interval_rows(&found), &CONNECTED_COLUMNS, format),
            Per::Day => render(&connected::per_user_day(&found), &USER_DAY_COLUMNS, format),
        })
    }

    /// The HTML report of the range: the runs dataset read once (for the intervals and the runs
    /// chart), the snapshots once (twice under a filter) for the intervals, concurrency and
    /// sessions together; written beside `out` and renamed onto it, so a failed write leaves no
    /// half a page.
    async fn html_report(&self, range: &Range, who: &Who, out: &Path, format: Format, now: i64) -> Result<String> {
        let (from, to) = range.bounds(now)?;
        let filter = who.filter()?;
        check_out(out)?;
        let mut connected = ConnectedFold::new(from, to);
        let mut runs = RunsFold::new(from, to);
        self.runs(range, (from, to), &mut |run| {
            connected.add_run(&run);
            runs.add(&run);
        })
        .await?;
        connected.runs_read();
        let mut concurrency = ConcurrencyFold::new(from, to);
        let mut sessions = query::SessionsFold::new(from, to);
        let mut session_rows = |line: AuditLine| sessions.add(&line);
        let mut every = Tee(vec![&mut connected, &mut concurrency, &mut session_rows]);
        self.fold_sessions(range, (from, to), &filter, &mut every).await?;
        drop(every);
        let found = connected.finish(&filter);
        let mut filters = who.described();
        let scope = [("--account", &range.scope.accounts), ("--region", &range.scope.regions)];
        filters.extend(
            scope.into_iter().filter(|(_, v)| !v.is_empty()).map(|(flag, v)| format!("{flag} {}", v.join(","))),
        );
        let (sessions, sessions_total) = report::page_sessions(sessions.finish(&filter));
        let page = report::html(&Report {
            generated_at: now,
            from,
            to,
            filters,
            services: names(&range.services).into_iter().map(str::to_owned).collect(),
            intervals: report::report_intervals(&found),
            users: report::user_totals(&found),
            concurrency: concurrency.finish(),
            runs: runs.finish(),
            sessions,
            sessions_total,
        });
        write_whole(out, page.as_bytes())?;
        Ok(render(&[Written { kind: "html", path: out.display().to_string() }], &["kind", "path"], format))
    }

    /// One session's observations and changes in the range; refused when it has none there.
    async fn timeline(&self, session_id: &str, range: &Range, format: Format, now: i64) -> Result<String> {
        let (from, to) = range.bounds(now)?;
        let own = |line: &AuditLine| line.session_id == session_id;
        let lines = self.lines(&[SNAPSHOTS, CHANGES], &range.services, (from, to), &range.scope, &own).await?;
        let rows: Vec<_> =
            query::timeline(&lines, session_id).into_iter().filter(|r| (from..=to).contains(&r.at)).collect();
        if rows.is_empty() {
            return Err(AuditError::Usage(format!(
                "session {session_id} is not in the history from {} to {}",
                format_time(from),
                format_time(to)
            )));
        }
        Ok(render(&rows, &["at", "service", "run_id", "event", "status", "transition"], format))
    }
}

/// Refuses an output path that cannot be written as a file, before the range is read (which may
/// take minutes): a folder, or a file in a folder that is not there.
fn check_out(out: &Path) -> Result<()> {
    let refuse = |why: String| Err(AuditError::Usage(format!("--out {}: {why}", out.display())));
    if out.is_dir() || out.file_name().is_none() {
        return refuse("is a folder: name the file to write".into());
    }
    let folder = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return refuse(format!("no folder {}", folder.display()));
    }
    Ok(())
}

/// Writes `bytes` to a file beside `path`, then renames it onto `path`: a reader finds the old
/// file or the new one, never part of it, and a failed write leaves nothing behind.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let partial = path.with_file_name(format!(".{name}.partial"));
    let written = std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        AuditError::Write(format!("{}: {e}", path.display()))
    })
}
