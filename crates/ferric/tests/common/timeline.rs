//! Reads `ferric serve`'s log (tracing's plain text format) back as a
//! timeline: when each event happened and its fields. The end-to-end test
//! builds its per-phase timing table from it, so the figures are ferric's
//! own account of a deploy, not the test's polling.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct LogEvent {
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub message: String,
    pub fields: HashMap<String, String>,
}

impl LogEvent {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn is(&self, message: &str, filters: &[(&str, &str)]) -> bool {
        self.message == message && filters.iter().all(|(k, v)| self.field(k) == Some(*v))
    }
}

/// `2026-11-26T06:52:01.123456Z` → seconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.split(':');
    let hours: f64 = time.next()?.parse().ok()?;
    let minutes: f64 = time.next()?.parse().ok()?;
    let seconds: f64 = time.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hours * 3600.0 + minutes * 60.0 + seconds)
}

fn is_field(token: &str) -> Option<(&str, &str)> {
    let (key, value) = token.split_once('=')?;
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .then_some((key, value))
}

/// One log line, or `None` for lines that are not events.
pub fn parse_line(line: &str) -> Option<LogEvent> {
    let mut parts = line.splitn(2, char::is_whitespace);
    let at = parse_timestamp(parts.next()?)?;
    let rest = parts.next()?.trim_start();
    // `LEVEL target: message key=value ...` (spans, if any, before the target).
    let (_, after_target) = rest.split_once(": ")?;
    let mut message = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    for token in after_target.split(' ') {
        match is_field(token) {
            Some((key, value)) => fields.push((key.to_owned(), value.to_owned())),
            None if fields.is_empty() => message.push(token),
            // A Display value with spaces (`to=deploy failed`).
            None => {
                if let Some((_, value)) = fields.last_mut() {
                    value.push(' ');
                    value.push_str(token);
                }
            }
        }
    }
    let fields =
        fields.into_iter().map(|(key, value)| (key, value.trim_matches('"').to_owned())).collect();
    Some(LogEvent { at, message: message.join(" "), fields })
}

pub fn parse(log: &str) -> Vec<LogEvent> {
    log.lines().filter_map(parse_line).collect()
}

/// The first event at or after `since` matching `message` and `filters`.
pub fn first_after<'a>(
    events: &'a [LogEvent],
    since: f64,
    message: &str,
    filters: &[(&str, &str)],
) -> Option<&'a LogEvent> {
    events.iter().find(|e| e.at >= since && e.is(message, filters))
}

/// The last event matching `message` and `filters`.
pub fn last<'a>(
    events: &'a [LogEvent],
    message: &str,
    filters: &[(&str, &str)],
) -> Option<&'a LogEvent> {
    events.iter().rev().find(|e| e.is(message, filters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_lines() {
        let line =
            "2026-11-26T06:52:01.500000Z  INFO ferric_conductor::ops: provision state changed \
                    node=6d1f from=deploy failed to=available elapsed_ms=3";
        let event = parse_line(line).unwrap();
        assert_eq!(event.message, "provision state changed");
        assert_eq!(event.field("from"), Some("deploy failed"));
        assert_eq!(event.field("to"), Some("available"));
        assert_eq!(event.field("elapsed_ms"), Some("3"));
        let quoted =
            "2026-11-26T06:52:01.5Z  INFO x: step finished phase=\"deploy\" step=write_image";
        assert_eq!(parse_line(quoted).unwrap().field("phase"), Some("deploy"));
        assert_eq!(parse_timestamp("1970-01-02T00:00:01.5Z"), Some(86_401.5));
    }
}
