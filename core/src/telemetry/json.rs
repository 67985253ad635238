//! The JSON line format of stdout, written straight into the line.
//!
//! tracing-subscriber's own JSON format (`fmt::layer().json()`) builds a
//! `BTreeMap` of `serde_json::Value`s for every span's fields, and for every
//! event inside a span parses that span's stored JSON back into a map before
//! writing it out again. Here a span's fields are stored once as a ready JSON
//! fragment (`"request_id":"…","method":"GET"`), copied as they are into each
//! event's line, and an event's own fields are escaped and written directly:
//! no map, no parse, no intermediate values. The line is built in a
//! per-thread buffer with direct calls and handed to the writer in one piece;
//! the date and time of day of the timestamp are formatted once per second.
//!
//! The lines are the same JSON objects as before (`timestamp`, `level`, the
//! event's fields flattened, `target`, and `span` with the current span's
//! fields and `name`); the tests compare the two formatters event by event.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object on one line.
pub struct JsonLines;

/// Formats span fields as the inside of a JSON object, for [`JsonLines`].
pub struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        with_line_buffer(|out| {
            let mut visitor = FieldWriter { out, first: true };
            fields.record(&mut visitor);
            writer.write_str(out)
        })
    }

    /// A field recorded after the span was created is appended; recorded
    /// twice, it appears twice and JSON readers keep the later value.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if !current.fields.is_empty() {
            current.fields.push(',');
        }
        self.format_fields(current.as_writer(), fields)
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Events bridged from the `log` crate carry their real target in a
        // `log.target` field; it is the line's `target`.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());

        with_line_buffer(|out| {
            out.push_str("{\"timestamp\":\"");
            push_timestamp(out, SystemTime::now());
            out.push_str("\",\"level\":\"");
            out.push_str(meta.level().as_str());
            out.push('"');
            event.record(&mut FieldWriter { out, first: false });
            out.push_str(",\"target\":");
            push_str_value(out, meta.target());

            let span = event
                .parent()
                .and_then(|id| ctx.span(id))
                .or_else(|| ctx.lookup_current());
            if let Some(span) = span {
                out.push_str(",\"span\":{");
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>()
                    && !fields.is_empty()
                {
                    out.push_str(fields);
                    out.push(',');
                }
                out.push_str("\"name\":");
                push_str_value(out, span.name());
                out.push('}');
            }
            out.push_str("}\n");
            // One write of the finished line: the writer behind `Writer` is
            // reached through `dyn fmt::Write`, which per piece costs more
            // than the copy.
            writer.write_str(out)
        })
    }
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

/// Runs `f` with this thread's empty line buffer (a fresh one if it is in
/// use, should formatting a value log something itself).
fn with_line_buffer<R>(f: impl FnOnce(&mut String) -> R) -> R {
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => {
            line.clear();
            f(&mut line)
        }
        Err(_) => f(&mut String::new()),
    })
}

thread_local! {
    /// The second last formatted and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339 in UTC with microseconds (`2026-12-04T23:41:09.825204Z`), as
/// tracing-subscriber writes it. The date and time of day are worked out
/// once per second per thread.
fn push_timestamp(out: &mut String, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (cached_secs, mut prefix) = SECOND.get();
    if cached_secs != secs {
        let civil = i64::try_from(secs)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut text = String::with_capacity(19);
        let _ = write!(
            text,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            civil.year(),
            u8::from(civil.month()),
            civil.day(),
            civil.hour(),
            civil.minute(),
            civil.second()
        );
        if text.len() == prefix.len() {
            prefix.copy_from_slice(text.as_bytes());
        }
        SECOND.set((secs, prefix));
    }
    // The prefix is ASCII digits and separators written above.
    out.push_str(std::str::from_utf8(&prefix).unwrap_or("0000-00-00T00:00:00"));
    out.push('.');
    let micros = since_epoch.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
    out.push('Z');
}

/// Writes `"name":value` pairs, a comma before each unless it is the first.
struct FieldWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl FieldWriter<'_> {
    fn key(&mut self, field: &Field) -> &mut String {
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        push_str_value(self.out, name);
        self.out.push(':');
        self.out
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let out = self.key(field);
        push_str_value(out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let out = self.key(field);
        out.push('"');
        // Writing into a String cannot fail; a failing Debug impl leaves
        // what it wrote so far.
        let _ = write!(Escaped(&mut *out), "{value:?}");
        out.push('"');
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let out = self.key(field);
        out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let out = self.key(field);
        out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        let out = self.key(field);
        out.push_str(if value { "true" } else { "false" });
    }

    /// JSON has no NaN or infinity: those are written as `null`, as
    /// serde_json does (which also formats with ryu).
    fn record_f64(&mut self, field: &Field, value: f64) {
        let out = self.key(field);
        if value.is_finite() {
            out.push_str(ryu::Buffer::new().format_finite(value));
        } else {
            out.push_str("null");
        }
    }
}

/// A JSON string literal: quoted and escaped.
fn push_str_value(out: &mut String, value: &str) {
    out.push('"');
    push_escaped(out, value);
    out.push('"');
}

/// Whether JSON requires `byte` escaped inside a string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Escapes what JSON requires inside a string (`"`, `\` and control
/// characters), passing runs of anything else through in one copy.
fn push_escaped(out: &mut String, s: &str) {
    // A scan without an early exit, which the compiler vectorises.
    if !s.bytes().fold(false, |any, byte| any | needs_escape(byte)) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        if !needs_escape(byte) {
            continue;
        }
        out.push_str(&s[start..i]);
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// A `fmt::Write` that escapes into a String, for values written through
/// `Debug` or `Display`.
struct Escaped<'a>(&'a mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    impl Lines {
        fn parsed(&self) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    /// Events of every field type, inside and outside spans, through
    /// `log`, with text that needs escaping.
    fn emit() {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f} é ✓";
        tracing::info!(target: "kindling::access", request_id = %"r-1", status = 404u16,
            latency_ms = 1.25, negative = -3i64, ok = true, "request completed");
        tracing::warn!(nan = f64::NAN, whole = 2.0, debug = ?Some(tricky), "{tricky}");
        let span = tracing::info_span!("request", request_id = %"r\"2", method = %"GET",
            route = "/api/items/<id>", r#type = "x", later = tracing::field::Empty);
        let _entered = span.enter();
        tracing::error!(error = %std::io::Error::other("boom\n"), "inside");
        span.record("later", 7u64);
        tracing::info!("after a record");
        tracing::info_span!("empty").in_scope(|| tracing::info!(n = 1u64, "no span fields"));
        tracing_log::log::warn!(target: "sqlx::query", "bridged from log: {tricky}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_microsecond_across_second_boundaries() {
        use std::time::Duration;
        let times = [
            (0, 0),
            (1_796_428_800, 5_000),
            (1_796_428_800, 999_999_999),
            (1_796_428_801, 0),
            (1_796_428_801, 123_456_789),
            (951_782_400, 42_000), // 2000-02-29
            (4_102_444_799, 999_999_000),
        ];
        for (secs, nanos) in times {
            let at = UNIX_EPOCH + Duration::new(secs, nanos);
            let mut ours = String::new();
            push_timestamp(&mut ours, at);
            assert_eq!(ours.len(), "2026-12-04T23:41:09.825204Z".len(), "{ours}");
            assert!(ours.ends_with('Z'), "{ours}");
            let parsed =
                time::OffsetDateTime::parse(&ours, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("{ours}: {e}"));
            let expected = time::OffsetDateTime::from(at);
            assert_eq!(
                parsed,
                expected.replace_nanosecond(nanos / 1000 * 1000).unwrap(),
                "{ours}"
            );
        }
    }

    #[test]
    fn lines_equal_tracing_subscribers_json_format_event_by_event() {
        let ours = Lines::default();
        let reference = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields)
                    .event_format(JsonLines)
                    .with_writer(ours.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true)
                    .with_writer(reference.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let _log = tracing_log::LogTracer::init();
            emit();
        });
        let (mut ours, mut reference) = (ours.parsed(), reference.parsed());
        assert_eq!(ours.len(), 6, "{ours:#?}");
        for line in ours.iter_mut().chain(reference.iter_mut()) {
            let timestamp = line
                .as_object_mut()
                .unwrap()
                .remove("timestamp")
                .expect("a timestamp");
            assert!(
                time::OffsetDateTime::parse(
                    timestamp.as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok(),
                "{timestamp}"
            );
        }
        assert_eq!(ours, reference);
        assert_eq!(ours[1]["nan"], serde_json::Value::Null);
        assert_eq!(ours[3]["span"]["later"], 7);
    }
}
