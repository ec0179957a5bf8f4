//! Logging: one tracing subscriber, human or JSON, filtered by the configured level, written
//! by its own thread.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::{BufWriter, IsTerminal as _};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::domain::time::rfc3339_seconds;
use crate::json::{self, Escaped};

/// Lines the writer thread could not keep up with; see `init`.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines waiting for the writer thread at most: most of a second at full speed, for 2 MiB
/// of queue (the queue's slots are allocated up front).
const QUEUED_LINES: usize = 65_536;

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
    // The writer thread flushes whenever the queue runs dry, so a quiet service still shows
    // each line at once.
    let (writer, guard) = queued(
        BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        QUEUED_LINES,
    );
    let counter = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_timer(Timestamp)
        .with_ansi(ansi)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine::new())
            .try_init(),
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

/// A writer that queues up to `lines` lines for a thread writing to `out`, and drops
/// (and counts) what does not fit rather than waiting.
fn queued<W: std::io::Write + Send + 'static>(out: W, lines: usize) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .buffered_lines_limit(lines)
        .lossy(true)
        .thread_name("log-writer")
        .finish(out)
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

/// tracing-subscriber's JSON line (`json().flatten_event(true)`, no target), byte for byte,
/// written straight into the line for an event outside any span: through serde and its
/// adaptors, the decision line cost 17,000 instructions, more than deciding. Events inside
/// a span (only dependencies' debug events) go to tracing-subscriber, which adds the spans.
struct JsonLine {
    in_span: Format<Json, Timestamp>,
}

impl JsonLine {
    fn new() -> Self {
        Self {
            in_span: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_target(false)
                .with_timer(Timestamp),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let span = event.parent().and_then(|id| ctx.span(id));
        if span.is_some() || ctx.lookup_current().is_some() {
            return self.in_span.format_event(ctx, writer, event);
        }
        writer.write_str(r#"{"timestamp":""#)?;
        Timestamp.format_time(&mut writer)?;
        writer.write_str(r#"","level":""#)?;
        writer.write_str(event.metadata().level().as_str())?;
        writer.write_char('"')?;
        let mut fields = JsonMembers {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value` the way tracing-serde does.
struct JsonMembers<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonMembers<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_str(",\"")?;
                Escaped(&mut *self.out).write_str(field.name())?;
                self.out.write_str("\":")?;
                value(self.out)
            })();
        }
    }
}

impl Visit for JsonMembers<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| json::write_string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's float format (ryu), and `null` for what JSON cannot hold.
        self.member(field, |out| match serde_json::Number::from_f64(value) {
            Some(number) => write!(out, "{number}"),
            None => out.write_str("null"),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Buffer {
        type Writer = Self;
        fn make_writer(&self) -> Self {
            self.clone()
        }
    }

    /// What `events` log through `format`, each timestamp replaced by its shape.
    fn lines<F>(format: F, events: &dyn Fn()) -> Vec<String>
    where
        F: for<'a> FormatEvent<tracing_subscriber::Registry, JsonFields> + Send + Sync + 'static,
    {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let (head, rest) = line.split_at(r#"{"timestamp":""#.len() + 27);
                let shape: String = head
                    .chars()
                    .map(|c| if c.is_ascii_digit() { 'd' } else { c })
                    .collect();
                assert_eq!(
                    shape, r#"{"timestamp":"dddd-dd-ddTdd:dd:dd.ddddddZ"#,
                    "{line}"
                );
                format!("{{\"timestamp\":\"T{rest}")
            })
            .collect()
    }

    fn every_kind_of_field() {
        tracing::info!(outcome = "allow", status = 200_u16, "decision");
        tracing::warn!(
            text = "quote \" backslash \\ newline \n cr \r tab \t backspace \u{8} form feed \u{c} bell \u{7} nul \0 us \u{1f} del \u{7f} é 日本 / 🦀",
            negative = -5_i64,
            big = u64::MAX,
            huge = u128::MAX,
            yes = true,
        );
        tracing::error!(
            half = 0.5_f64,
            one = 1.0_f64,
            nan = f64::NAN,
            infinite = f64::NEG_INFINITY,
            zero = -0.0_f64,
            tiny = 1e-300_f64,
        );
        let error = std::io::Error::other("boom \"x\"");
        tracing::debug!(
            debug = ?vec!["a\"b", "c"],
            display = %"x\ny",
            error = &error as &dyn std::error::Error,
            "message with {} and {:?}",
            "args",
            "quoted\""
        );
        tracing::trace!(r#type = "raw", "dotted.name" = 1_u64, empty = "");
        let span = tracing::info_span!("request", id = 7_u64);
        tracing::info!(parent: &span, explicit = true);
        let _entered = span.enter();
        tracing::info!(inside = true, "in a span");
    }

    #[test]
    fn json_lines_match_tracing_subscribers_byte_for_byte() {
        let stock = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_timer(Timestamp);
        let expected = lines(stock, &every_kind_of_field);
        let ours = lines(JsonLine::new(), &every_kind_of_field);
        assert_eq!(ours.len(), 7, "{ours:#?}");
        assert_eq!(ours, expected);
        for line in &ours {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(
            ours[6].contains(r#""span":{"id":7,"name":"request"}"#),
            "{}",
            ours[6]
        );
    }

    /// Blocks every write until `open` is sent, then appends to the buffer.
    struct Stalled {
        open: std::sync::mpsc::Receiver<()>,
        opened: bool,
        out: Buffer,
    }

    impl std::io::Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if !self.opened {
                self.open.recv().unwrap();
                self.opened = true;
            }
            self.out.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A reader that stops reading must not stop requests: with the writer thread stuck, the
    /// 100 events all return, what does not fit in the queue is counted as dropped, and what
    /// did fit is written once the reader resumes.
    #[test]
    fn a_stalled_reader_drops_and_counts_lines_instead_of_blocking() {
        let (open, wait) = std::sync::mpsc::channel();
        let out = Buffer::default();
        let (writer, guard) = queued(
            Stalled {
                open: wait,
                opened: false,
                out: out.clone(),
            },
            4,
        );
        let dropped = writer.error_counter();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine::new())
            .finish();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tracing::subscriber::with_default(subscriber, || {
                for n in 0..100_u64 {
                    tracing::info!(n, "decision");
                }
            });
            done.send(()).unwrap();
        });
        // A bound only for the failure: a logger that waits would hang here forever.
        finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("logging waited for a stalled reader");
        // One line may be with the stuck writer thread already; four wait in the queue.
        let dropped = dropped.dropped_lines();
        assert!((95..=96).contains(&dropped), "{dropped}");
        open.send(()).unwrap();
        drop(guard);
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 100 - dropped, "{written}");
        assert!(
            written.contains(r#""n":0}"#),
            "the first line is kept: {written}"
        );
    }
}
