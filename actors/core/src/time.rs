//! Calendar arithmetic for epoch millis, without a clock: UTC dates and Conductor's ISO form.

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
