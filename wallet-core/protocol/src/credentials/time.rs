//! UTC timestamps in the RFC 3339 form VC 2.0 uses (`validFrom`, `validUntil`, proof `created`).

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Seconds since the epoch of `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; fractions dropped). None when it is neither, or
/// before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let (date, time) = match text.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day) = (i64::from(digits(year)?), digits(month)?, digits(day)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = time {
        let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            (clock, 0)
        } else {
            let split = time.rfind(['+', '-'])?;
            let (clock, offset) = time.split_at(split);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = offset[1..].split_once(':')?;
            if hours.len() != 2 || minutes.len() != 2 {
                return None;
            }
            let (hours, minutes) = (digits(hours)?, digits(minutes)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            (clock, sign * i64::from(hours * 3600 + minutes * 60))
        };
        let clock = match clock.split_once('.') {
            Some((clock, fraction)) => {
                digits(fraction)?;
                clock
            }
            None => clock,
        };
        let mut fields = clock.split(':');
        let (h, m, s) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || h.len() != 2 || m.len() != 2 || s.len() != 2 {
            return None;
        }
        let (h, m, s) = (digits(h)?, digits(m)?, digits(s)?);
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        seconds += i64::from(h * 3600 + m * 60 + s.min(59)) - offset;
    }
    u64::try_from(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_both_ways() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_516_269_022, "2018-01-18T09:50:22Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_677_281_798, "2023-02-24T23:36:38Z"),
        ] {
            assert_eq!(format_rfc3339(secs), text);
            assert_eq!(parse_rfc3339(text), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2018-01-18T10:50:22+01:00"),
            Some(1_516_269_022)
        );
        assert_eq!(parse_rfc3339("2018-01-18T09:50:22.5Z"), Some(1_516_269_022));
        assert_eq!(parse_rfc3339("2000-02-29"), Some(951_782_400));
        for bad in [
            "",
            "2001-02-29",
            "2020-13-01",
            "2020-1-01",
            "2020-01-01T25:00:00Z",
            "2020-01-01T10:00:00",
            "1969-12-31",
            "2020-01-01T10:00:00.Z",
            "soon",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
