//! Clock helpers with JavaScript `Date` semantics, so messages and edge cases match Clerk's.

use std::time::{SystemTime, UNIX_EPOCH};

/// JavaScript's time-value limit: ±8.64e15 ms; past it a `Date` is invalid.
const MAX_TIME_MS: f64 = 8.64e15;

/// Milliseconds since the epoch, as `Date.now()` gives them.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time value of `new Date(0).setUTCSeconds(seconds)`: seconds are truncated, and
/// out-of-range values give `None` (an invalid date, which compares false with everything).
pub fn seconds_to_time_ms(seconds: f64) -> Option<f64> {
    let ms = seconds.trunc() * 1000.0;
    (ms.is_finite() && ms.abs() <= MAX_TIME_MS).then_some(ms)
}

/// `Date.prototype.toUTCString()`: `Thu, 01 Jan 1970 00:00:00 GMT`, or `Invalid Date`.
pub fn utc_string(ms: Option<f64>) -> String {
    let Some(ms) = ms else {
        return "Invalid Date".to_owned();
    };
    // The range check above keeps this cast exact.
    #[allow(clippy::cast_possible_truncation)]
    let ms = ms as i64;
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    let year = if year < 0 {
        format!("-{:06}", -year)
    } else {
        format!("{year:04}")
    };
    format!(
        "{weekday}, {day:02} {month} {year} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_to_utc_string() {
        assert_eq!(utc_string(Some(0.0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            utc_string(seconds_to_time_ms(1_795_000_000.9)),
            "Wed, 18 Nov 2026 11:06:40 GMT"
        );
        assert_eq!(utc_string(Some(-1000.0)), "Wed, 31 Dec 1969 23:59:59 GMT");
        assert_eq!(
            utc_string(Some(951_782_400_000.0)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn out_of_range_dates_are_invalid() {
        assert_eq!(seconds_to_time_ms(1e20), None);
        assert_eq!(seconds_to_time_ms(f64::NAN), None);
        assert_eq!(utc_string(None), "Invalid Date");
    }
}
