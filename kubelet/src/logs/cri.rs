//! The CRI container log format, one record per line:
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>`.
//! `F` ends a line; `P` marks a piece of a line too long for one record (the
//! kubelet splits at 16 KiB) that continues in the next record.

use chrono::{DateTime, SecondsFormat, Utc};

/// Longest content of one record before a line is split into `P` pieces.
pub const MAX_RECORD_CONTENT: usize = 16 * 1024;

/// Which output a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The word used in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the runtime read it.
    pub time: DateTime<Utc>,
    /// Where it came from.
    pub stream: Stream,
    /// `true` for `P` (the line continues in the next record).
    pub partial: bool,
    /// The text, without the trailing newline.
    pub content: Vec<u8>,
}

/// Appends the records for one output line (without its `\n`) to `out`,
/// splitting it into `P` pieces when it is longer than [`MAX_RECORD_CONTENT`].
pub fn encode_line(time: DateTime<Utc>, stream: Stream, line: &[u8], out: &mut Vec<u8>) {
    let stamp = time.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut chunks = line.chunks(MAX_RECORD_CONTENT).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(format!("{stamp} {} F \n", stream.as_str()).as_bytes());
        return;
    }
    while let Some(chunk) = chunks.next() {
        let tag = if chunks.peek().is_some() { "P" } else { "F" };
        out.extend_from_slice(format!("{stamp} {} {tag} ", stream.as_str()).as_bytes());
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
}

/// Parses one record (with or without its trailing newline).
pub fn parse_record(line: &[u8]) -> Option<Record> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let content = parts.next().unwrap_or_default().to_vec();
    Some(Record {
        time,
        stream,
        partial,
        content,
    })
}

/// The plain text of a CRI log file as `kubectl logs` shows it: partial
/// records joined, one line per `F` record.
pub fn plain_text(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len());
    for record in file.split(|b| *b == b'\n').filter_map(parse_record) {
        out.extend_from_slice(&record.content);
        if !record.partial {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .single()
            .expect("valid")
            + chrono::Duration::nanoseconds(123_456_789)
    }

    #[test]
    fn a_line_becomes_one_full_record() {
        let mut out = Vec::new();
        encode_line(t(), Stream::Stdout, b"hello world", &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "2026-11-22T10:00:00.123456789Z stdout F hello world\n"
        );
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let line = vec![b'x'; MAX_RECORD_CONTENT * 2 + 5];
        let mut out = Vec::new();
        encode_line(t(), Stream::Stderr, &line, &mut out);
        let records: Vec<Record> = out
            .split(|b| *b == b'\n')
            .filter_map(parse_record)
            .collect();
        assert_eq!(records.len(), 3);
        assert!(records[0].partial && records[1].partial && !records[2].partial);
        assert_eq!(records[2].content.len(), 5);
        assert_eq!(plain_text(&out), [line.as_slice(), b"\n"].concat());
    }

    #[test]
    fn records_round_trip_and_junk_is_skipped() {
        let mut out = Vec::new();
        encode_line(t(), Stream::Stderr, b"", &mut out);
        encode_line(t(), Stream::Stdout, b"a b c", &mut out);
        out.extend_from_slice(b"not a record\n");
        let records: Vec<Record> = out
            .split(|b| *b == b'\n')
            .filter_map(parse_record)
            .collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].stream, Stream::Stderr);
        assert_eq!(records[0].content, b"");
        assert_eq!(records[1].time, t());
        assert_eq!(records[1].content, b"a b c");
        assert_eq!(plain_text(&out), b"\na b c\n");
    }
}
