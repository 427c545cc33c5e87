//! Durations, times, sizes and tables as people read and write them.
//!
//! - [`parse_duration`]: `30m`, `12h`, `7d`, `2w`, `90s` or plain seconds.
//! - [`duration`], [`time`], [`relative`], [`size`]: the other way round. Times are shown in
//!   UTC (`2026-12-01 10:00 UTC`), so what one person reads another can compare.
//! - [`table`]: left-aligned columns, server-provided text made printable.

use super::error::CliError;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;

/// Parses a duration into seconds: a number with an optional unit (`s`, `m`, `h`, `d`, `w`).
///
/// # Errors
///
/// A usage error naming `flag` for anything else, zero, or an overflow.
pub(crate) fn parse_duration(text: &str, flag: &str) -> Result<u64, CliError> {
    let bad = || {
        CliError::usage(
            format!("invalid duration for {flag}: {text:?}"),
            "Write a number with a unit: 30m, 12h, 7d, 2w (or plain seconds).",
        )
    };
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        Some(_) => (t, 's'),
        None => return Err(bad()),
    };
    let unit = match unit {
        's' => 1,
        'm' => MINUTE,
        'h' => HOUR,
        'd' => DAY,
        'w' => WEEK,
        _ => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match n.checked_mul(unit) {
        Some(0) => Err(CliError::usage(
            format!("{flag} must be longer than zero"),
            "Write a number with a unit: 30m, 12h, 7d, 2w (or plain seconds).",
        )),
        Some(secs) => Ok(secs),
        None => Err(bad()),
    }
}

/// A duration in its largest unit and the next one: `30d`, `1d 2h`, `45m`, `30s` (rounded
/// down; days are the largest unit shown, as expiry and retention are thought of in days).
pub(crate) fn duration(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (1, "s")];
    let Some(i) = UNITS.iter().position(|(size, _)| secs >= *size) else {
        return "0s".into();
    };
    let (size, name) = UNITS[i];
    let mut out = format!("{}{name}", secs / size);
    if let Some((next, next_name)) = UNITS.get(i + 1) {
        let n = (secs % size) / next;
        if n > 0 {
            out.push_str(&format!(" {n}{next_name}"));
        }
    }
    out
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn time(unix: u64) -> String {
    let days = unix / DAY;
    let rem = unix % DAY;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / HOUR,
        (rem % HOUR) / MINUTE
    )
}

/// `t` relative to `now`: `in 6d 23h`, `3h ago`, `now`.
pub(crate) fn relative(t: u64, now: u64) -> String {
    match t.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {}", duration(t - now)),
        std::cmp::Ordering::Less => format!("{} ago", duration(now - t)),
        std::cmp::Ordering::Equal => "now".into(),
    }
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A byte count: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Text from the server made safe for a terminal: control characters become `?`.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || reorders_text(c) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Whether `c` is a bidirectional formatting character: an embedding, override or isolate
/// (U+202A to U+202E, U+2066 to U+2069), or an invisible directional mark (U+200E, U+200F,
/// U+061C). In a file name an override can make `invoice\u{202E}fdp.exe` show as
/// `invoiceexe.pdf`; a mark, invisible itself, moves the digits and punctuation around it.
/// Right-to-left letters themselves are not.
pub(crate) fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Rows as left-aligned columns separated by two spaces; the first row is the header.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(
                    ' ',
                    widths[i] - cell.chars().count() + 2,
                ));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        for (text, secs) in [
            ("30m", 1800),
            ("12h", 43_200),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("90s", 90),
            ("3600", 3600),
            (" 1D ", 86_400),
        ] {
            assert_eq!(parse_duration(text, "--expires").unwrap(), secs, "{text}");
        }
        for bad in [
            "",
            "d",
            "7x",
            "-1d",
            "1.5h",
            "0",
            "0d",
            "7 d",
            "1e3",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad, "--expires").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_print() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(604_800), "7d");
        assert_eq!(duration(31_536_000), "365d");
        assert_eq!(duration(90_000), "1d 1h");
        assert_eq!(duration(86_400 + 59), "1d");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(time(1_764_000_000), "2025-11-24 16:00 UTC");
        assert_eq!(time(4_102_444_800 + 59), "2100-01-01 00:00 UTC");
        assert_eq!(relative(100, 40), "in 1m");
        assert_eq!(relative(40, 100), "1m ago");
        assert_eq!(relative(5, 5), "now");
    }

    #[test]
    fn sizes_and_tables() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 << 20), "12.0 MiB");
        let t = table(&[
            vec!["ID".into(), "NAME".into(), "SIZE".into()],
            vec!["ab".into(), "plan.pdf".into(), "1 B".into()],
        ]);
        assert_eq!(t, "ID  NAME      SIZE\nab  plan.pdf  1 B\n");
        assert_eq!(printable("a\u{1b}[2Jb"), "a?[2Jb");
    }
}
