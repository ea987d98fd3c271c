//! Span and event fields in the text log, written the way `tracing_subscriber`'s `DefaultFields`
//! writes them without colours, at a fraction of its cost.
//!
//! The text log formats every span's fields when the span opens, whether or not anything is
//! ever logged inside it. Each workflow command and HTTP request opens one, and
//! `DefaultFields` styles each field name and the `=` through `nu_ansi_term` (a no-op style
//! when colours are off) and writes every value through `core::fmt`: 4.5% of the node's
//! instructions in the linear benchmark (docs/BENCHMARKS.md). [`PlainFields`] writes names,
//! plain strings and integers directly and leaves everything else (messages, errors, other
//! values, and a terminal's colours) to `DefaultFields`, so the output is the same.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The text log's field formatter.
#[derive(Debug, Default)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> PlainVisitor<'a> {
        PlainVisitor { writer, is_empty: true, result: Ok(()) }
    }
}

/// Writes one span's or event's fields.
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Hands one field to `DefaultFields`' visitor, which picks up where this one is.
    fn default_visitor(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        // `log.` fields are a bridged `log` record's metadata, which the default visitor skips.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }

    /// Writes `name=`, with a separating space unless it is the first field. False when the
    /// field is the default visitor's: a message, `log.` metadata, or any field in colour.
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.result.is_err() || self.writer.has_ansi_escapes() || name == "message" || name.starts_with("log.") {
            return false;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let padding = if std::mem::replace(&mut self.is_empty, false) { "" } else { " " };
        self.result = self
            .writer
            .write_str(padding)
            .and_then(|()| self.writer.write_str(name))
            .and_then(|()| self.writer.write_char('='));
        self.result.is_ok()
    }

    /// Writes an integer's digits after its name.
    fn integer(&mut self, negative: bool, magnitude: u64) {
        let mut digits = [0u8; 21];
        let mut at = digits.len();
        let mut rest = magnitude;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if negative {
            at -= 1;
            digits[at] = b'-';
        }
        // Only ASCII digits and a sign were written.
        let text = std::str::from_utf8(&digits[at..]).unwrap_or_default();
        self.result = self.writer.write_str(text);
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Strings `Debug` would escape are left to the default visitor.
        let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !plain || !self.name(field) {
            return self.default_visitor(field, |v| v.record_str(field, value));
        }
        self.result = self
            .writer
            .write_char('"')
            .and_then(|()| self.writer.write_str(value))
            .and_then(|()| self.writer.write_char('"'));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.name(field) {
            return self.default_visitor(field, |v| v.record_u64(field, value));
        }
        self.integer(false, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.name(field) {
            return self.default_visitor(field, |v| v.record_i64(field, value));
        }
        self.integer(value < 0, value.unsigned_abs());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.name(field) {
            return self.default_visitor(field, |v| v.record_bool(field, value));
        }
        self.result = self.writer.write_str(if value { "true" } else { "false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default_visitor(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.name(field) {
            return self.default_visitor(field, |v| v.record_debug(field, value));
        }
        self.result = write!(self.writer, "{value:?}");
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Outer(io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Spans and events of every kind of field the node logs, and some it does not.
    fn log_everything() {
        let id = String::from("3b1f0c6e-8d1e-4a57-9f43-7a1d2a5c9e10");
        let span = tracing::info_span!(
            "workflow",
            workflow_id = %id,
            command = "task_update",
            messages = 3u64,
            term = 7u64,
            delta = -42i64,
            zero = 0i64,
            min = i64::MIN,
            max = u64::MAX,
            leader = true,
            follower = false,
            ratio = 0.5f64,
            r#type = "SIMPLE",
            quoted = "say \"hi\"\\now",
            multiline = "a\nb\tc",
            unicode = "café ☕",
            empty = "",
            debug = ?vec![1, 2],
            task_id = tracing::field::Empty,
        );
        let _entered = span.enter();
        span.record("task_id", "t-1");
        span.record("task_id", tracing::field::display("t-2"));
        tracing::warn!(workflow_id = %id, attempt = 2u64, "retrying \"{}\"", id);
        let error = Outer(io::Error::other("disk full"));
        tracing::error!(error = &error as &(dyn std::error::Error + 'static), plain = "x", "failed");
        tracing::info!(message = "with\na newline", count = 1u64);
        let inner = tracing::info_span!("inner", r#ref = "ref-1", n = 1u64);
        inner.in_scope(|| tracing::info!("nested"));
    }

    fn text_log(plain: bool, ansi: bool) -> String {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt().with_writer(out.clone()).with_ansi(ansi).without_time();
        if plain {
            tracing::subscriber::with_default(builder.fmt_fields(PlainFields).finish(), log_everything);
        } else {
            tracing::subscriber::with_default(builder.finish(), log_everything);
        }
        let bytes = out.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn writes_what_default_fields_writes() {
        let expected = text_log(false, false);
        for line in
            ["command=\"task_update\" messages=3", "type=\"SIMPLE\"", "task_id=t-2}", "inner{ref=\"ref-1\" n=1}"]
        {
            assert!(expected.contains(line), "{line} in {expected}");
        }
        assert_eq!(text_log(true, false), expected);
        // In colour every field is the default visitor's.
        let coloured = text_log(false, true);
        assert!(coloured.contains('\u{1b}'), "{coloured}");
        assert_eq!(text_log(true, true), coloured);
    }
}
