//! Logging: one tracing subscriber, human or JSON, filtered by the configured level, written
//! by its own thread.

use std::cell::RefCell;
use std::fmt;
use std::io::{BufWriter, IsTerminal as _};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::config::LogFormat;
use crate::domain::time::rfc3339_seconds;

/// Lines the writer thread could not keep up with; see `init`.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines waiting for the writer thread at most: about 40 MiB of decision lines.
const QUEUED_LINES: usize = 128_000;

/// Keeps the writer thread; dropping it writes out what is still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber; a second call (tests) is a no-op.
///
/// Every decision is logged at `info`. Written from the request's worker, each line was a
/// `write(2)` under stdout's lock, which every worker contends on, and halved throughput
/// at the default level. The workers now only format the line and queue it; one thread
/// writes what has queued in as few writes as it can. A worker never waits for the
/// writer: if the queue is full (the log reader has stalled), lines are dropped and counted
/// in `clerk_forward_auth_log_lines_dropped_total` rather than slowing every request.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stdout().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("log-writer")
        // The writer thread flushes whenever the queue runs dry, so a quiet service still
        // shows each line at once.
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let counter = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_timer(Timestamp)
        .with_ansi(ansi)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    match installed {
        Ok(()) => {
            let _ = DROPPED.set(counter);
            LogGuard {
                _writer: Some(guard),
            }
        }
        // Already installed: this writer thread has no subscriber to feed.
        Err(_) => LogGuard { _writer: None },
    }
}

/// Log lines dropped so far because the writer thread fell behind.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// The timestamp tracing-subscriber writes (`2026-11-27T07:25:14.266848Z`), with the date
/// and time of day formatted once a second per thread: formatting them for every line was a
/// sixth of a decision line's cost.
struct Timestamp;

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        thread_local! {
            static SECOND: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut fraction = *b".000000Z";
        let mut micros = now.subsec_micros();
        for digit in fraction[1..7].iter_mut().rev() {
            // A digit: always below 10.
            #[allow(clippy::cast_possible_truncation)]
            let value = (micros % 10) as u8;
            *digit = b'0' + value;
            micros /= 10;
        }
        SECOND.with_borrow_mut(|(secs, text)| {
            if *secs != now.as_secs() || text.is_empty() {
                *secs = now.as_secs();
                *text = rfc3339_seconds(*secs);
            }
            w.write_str(text)?;
            w.write_str(std::str::from_utf8(&fraction).unwrap_or_default())
        })
    }
}
