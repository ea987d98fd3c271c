//! Calendar arithmetic for epoch millis, without a clock: UTC dates, Conductor's ISO form, and
//! wall-clock times in a named zone (WAIT's `until`).

use std::str::FromStr;

use chrono::{Offset, TimeZone};

/// Days since 1970-01-01 of a proleptic Gregorian date. The arithmetic is done in 128 bits, so
/// no input overflows: a date too far out for an `i64` count of days saturates at `i64::MIN` or
/// `i64::MAX`.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let (y, m, d) = (i128::from(y), i128::from(m), i128::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    saturate(era * 146_097 + doe - 719_468)
}

/// The date (year, month, day) of a day count since 1970-01-01. The arithmetic is done in 128
/// bits, so every `i64` has its date (the year of `i64::MAX` days is far inside `i64`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (saturate(yoe + era * 400 + i128::from(m <= 2)), saturate(m), saturate(d))
}

/// `v` as an `i64`, or the nearest end of its range.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Epoch millis as `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, the form of Conductor's summaries.
pub fn iso_millis(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// An ISO-8601 time in UTC or with an offset (`2026-11-21T10:30:00Z`, `2026-11-21T10:30:00.250+02:00`,
/// `2026-11-21T10:30`, `2026-11-21`): epoch millis.
pub fn parse_iso(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' ']).unwrap_or((text, ""));
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset_minutes) = match rest.find(['Z', 'z', '+', '-']) {
        None => (rest, 0),
        Some(i) => {
            let zone = &rest[i..];
            let offset = match zone {
                "Z" | "z" => 0,
                _ => {
                    let sign = if zone.starts_with('-') { -1 } else { 1 };
                    let digits = zone[1..].replace(':', "");
                    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?)
                }
            };
            (&rest[..i], offset)
        }
    };
    let mut millis_of_day = 0;
    if !clock.is_empty() {
        let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = hms.split(':');
        let h: i64 = parts.next()?.parse().ok()?;
        let mi: i64 = parts.next()?.parse().ok()?;
        let s: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
        if parts.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&s) {
            return None;
        }
        let fraction = if fraction.is_empty() {
            0
        } else if fraction.bytes().all(|b| b.is_ascii_digit()) {
            format!("{fraction:0<3}")[..3].parse::<i64>().ok()?
        } else {
            return None;
        };
        millis_of_day = ((h * 60 + mi) * 60 + s) * 1000 + fraction;
    }
    // A date so far out that its millis overflow an `i64` is refused.
    days_from_civil(y, m, day).checked_mul(86_400_000)?.checked_add(millis_of_day)?.checked_sub(offset_minutes * 60_000)
}

/// Zone abbreviations a time may name, each a fixed offset in minutes east of UTC, as Java's
/// `SimpleDateFormat` reads them (Conductor's WAIT `until` is parsed with the pattern
/// `yyyy-MM-dd HH:mm z`, and the Java SDK sends e.g. `2026-12-05 14:30 PST`). A standard-time
/// name is standard time all year and a daylight name daylight time: `PST` in July is still
/// UTC−8. They are matched without regard to case.
///
/// Where an abbreviation means several zones, this list picks one: `CST` is US Central (not
/// China), `IST` is India (not Israel or Ireland), `BST` is British Summer Time (not
/// Bangladesh), `AST` is Atlantic (not Arabia). Any other zone can be named by its IANA name
/// (`America/Los_Angeles`, `Asia/Shanghai`), which follows the zone's daylight-saving rules.
pub const ZONE_ABBREVIATIONS: &[(&str, i32)] = &[
    ("UTC", 0),
    ("GMT", 0),
    ("UT", 0),
    ("Z", 0),
    ("WET", 0),
    ("WEST", 60),
    ("BST", 60),
    ("CET", 60),
    ("CEST", 120),
    ("MET", 60),
    ("MEST", 120),
    ("EET", 120),
    ("EEST", 180),
    ("MSK", 180),
    ("GST", 240),
    ("PKT", 300),
    ("IST", 330),
    ("ICT", 420),
    ("WIB", 420),
    ("SGT", 480),
    ("HKT", 480),
    ("AWST", 480),
    ("JST", 540),
    ("KST", 540),
    ("ACST", 570),
    ("ACDT", 630),
    ("AEST", 600),
    ("AEDT", 660),
    ("NZST", 720),
    ("NZDT", 780),
    ("HST", -600),
    ("AKST", -540),
    ("AKDT", -480),
    ("PST", -480),
    ("PDT", -420),
    ("MST", -420),
    ("MDT", -360),
    ("CST", -360),
    ("CDT", -300),
    ("EST", -300),
    ("EDT", -240),
    ("AST", -240),
    ("ADT", -180),
    ("NST", -210),
    ("NDT", -150),
];

/// The instant (minutes since the epoch, UTC) of a wall-clock time in `zone`. `local` is the
/// wall-clock time counted as if it were UTC, in minutes since the epoch.
///
/// `zone` is one of [`ZONE_ABBREVIATIONS`]; an offset (`+02:00`, `-0800`, `+5`, optionally after
/// `GMT` or `UTC`: `GMT+05:30`); or an IANA name (`Europe/Paris`). In an IANA zone, a time
/// that occurs twice (the hour clocks go back) is the earlier, and a time that does not occur
/// (the hour clocks skip) is read with the offset before the skip, so `02:30` on a spring-forward
/// night is `03:30` daylight time, as Java's lenient calendar reads it. `None` for anything
/// else, or a time too far out to place.
pub fn utc_minutes_in_zone(local: i64, zone: &str) -> Option<i64> {
    let zone = zone.trim();
    if let Some(&(_, offset)) = ZONE_ABBREVIATIONS.iter().find(|(name, _)| name.eq_ignore_ascii_case(zone)) {
        return local.checked_sub(i64::from(offset));
    }
    let numeric = ["GMT", "UTC", "gmt", "utc"].iter().find_map(|p| zone.strip_prefix(p)).unwrap_or(zone);
    if let Some(offset) = offset_minutes(numeric) {
        return local.checked_sub(offset);
    }
    let tz = chrono_tz::Tz::from_str(zone).ok()?;
    let naive = chrono::DateTime::from_timestamp(local.checked_mul(60)?, 0)?.naive_utc();
    let offset_seconds = match tz.offset_from_local_datetime(&naive) {
        chrono::LocalResult::Single(offset) | chrono::LocalResult::Ambiguous(offset, _) => {
            offset.fix().local_minus_utc()
        }
        // In a gap: the offset in force a day earlier, before the clocks moved.
        chrono::LocalResult::None => {
            let before = naive.checked_sub_signed(chrono::TimeDelta::days(1))?;
            tz.offset_from_utc_datetime(&before).fix().local_minus_utc()
        }
    };
    local.checked_sub(i64::from(offset_seconds / 60))
}

/// `+02:00`, `-0800`, `+5`, `-05:30`: minutes east of UTC, at most 23:59 either way.
fn offset_minutes(text: &str) -> Option<i64> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &text[1..];
    if !body.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (h, mi) = match body.split_once(':') {
        Some((h, mi)) => (h, mi),
        None if body.len() == 4 => body.split_at(2),
        None => (body, "0"),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(mi) {
        return None;
    }
    let (h, mi) = (h.parse::<i64>().ok()?, mi.parse::<i64>().ok()?);
    ((0..=23).contains(&h) && (0..=59).contains(&mi)).then_some(sign * (h * 60 + mi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 60, 10_957, 20_413, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn iso_form() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_795_257_000_250), "2026-11-21T10:30:00.250Z");
        assert_eq!(parse_iso("2026-11-21T10:30:00.250Z"), Some(1_795_257_000_250));
        assert_eq!(parse_iso("2026-11-21T12:30:00+02:00"), Some(1_795_257_000_000));
        assert_eq!(parse_iso("2026-11-21T10:30"), Some(1_795_257_000_000));
        assert_eq!(parse_iso("2026-11-21"), Some(1_795_219_200_000));
        assert_eq!(parse_iso("2026-11-21T10:30:00.5Z"), Some(1_795_257_000_500));
        for bad in ["", "yesterday", "2026-13-01", "2026-11-21T25:00", "2026-11-21T10:30+2", "2026-11-21T10:30:00.x"] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }
}
