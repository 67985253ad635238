//! The JSON line format of stdout, written straight into the line.
//!
//! tracing-subscriber's own JSON format (`fmt::layer().json()`) builds a
//! `BTreeMap` of `serde_json::Value`s for every span's fields, and for every
//! event inside a span parses that span's stored JSON back into a map before
//! writing it out again. Here a span's fields are stored once as a ready JSON
//! fragment (`"request_id":"…","method":"GET"`), copied as they are into each
//! event's line, and an event's own fields are escaped and written directly:
//! no map, no parse, no intermediate values.
//!
//! The lines are the same JSON objects as before (`timestamp`, `level`, the
//! event's fields flattened, `target`, and `span` with the current span's
//! fields and `name`); the tests compare the two formatters event by event.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object on one line.
pub struct JsonLines;

/// Formats span fields as the inside of a JSON object, for [`JsonLines`].
pub struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter::new(&mut writer, true);
        fields.record(&mut visitor);
        visitor.result
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

        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut visitor = FieldWriter::new(&mut writer, false);
        event.record(&mut visitor);
        visitor.result?;
        writer.write_str(",\"target\":")?;
        write_str_value(&mut writer, meta.target())?;

        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>()
                && !fields.is_empty()
            {
                writer.write_str(fields)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            write_str_value(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes `"name":value` pairs, a comma before each unless it is the first.
struct FieldWriter<'a, 'w> {
    out: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl<'a, 'w> FieldWriter<'a, 'w> {
    fn new(out: &'a mut Writer<'w>, first: bool) -> Self {
        FieldWriter {
            out,
            first,
            result: Ok(()),
        }
    }

    /// Writes the separator and the key; `None` once writing has failed.
    fn key(&mut self, field: &Field) -> Option<&mut Writer<'w>> {
        let name = field.name();
        if self.result.is_err() {
            return None;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            ","
        };
        self.result = self
            .out
            .write_str(separator)
            .and_then(|()| write_str_value(self.out, name))
            .and_then(|()| self.out.write_char(':'));
        self.result.is_ok().then_some(&mut *self.out)
    }

    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if let Some(out) = self.key(field) {
            self.result = out.write_fmt(value);
        }
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(out) = self.key(field) {
            self.result = write_str_value(out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(out) = self.key(field) {
            self.result = out
                .write_char('"')
                .and_then(|()| write!(Escaped(&mut *out), "{value:?}"))
                .and_then(|()| out.write_char('"'));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    /// JSON has no NaN or infinity: those are written as `null`, as
    /// serde_json does.
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, format_args!("{value:?}"));
        } else {
            self.raw(field, format_args!("null"));
        }
    }
}

/// A JSON string literal: quoted and escaped.
fn write_str_value(out: &mut impl Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(value)?;
    out.write_char('"')
}

/// Escapes what JSON requires inside a string (`"`, `\` and control
/// characters), passing runs of anything else through in one write.
struct Escaped<W>(W);

impl<W: Write> Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
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
