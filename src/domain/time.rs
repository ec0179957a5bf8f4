//! Clock helpers with JavaScript `Date` semantics, so messages and edge cases match Clerk's.

use std::fmt;
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

/// `toUTCString()`'s names; day 0 of the epoch was a Thursday.
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Date.prototype.toUTCString()`: `Thu, 01 Jan 1970 00:00:00 GMT`, or `Invalid Date`.
/// A `Display`, so that a message writes the date straight into itself: an expired token is
/// common, and its message carries two dates.
pub struct UtcString(pub Option<f64>);

impl fmt::Display for UtcString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ms) = self.0 else {
            return f.write_str("Invalid Date");
        };
        // Callers pass time values within ±8.64e15 ms, which this cast keeps exact.
        #[allow(clippy::cast_possible_truncation)]
        let ms = ms as i64;
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut out = Ascii::default();
        out.push(WEEKDAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)]);
        out.push(", ");
        out.digits(day.unsigned_abs(), 2);
        out.push(" ");
        out.push(MONTHS[usize::try_from(month - 1).unwrap_or(0)]);
        out.push(" ");
        if year < 0 {
            out.push("-");
            out.digits(year.unsigned_abs(), 6);
        } else {
            out.digits(year.unsigned_abs(), 4);
        }
        out.push(" ");
        out.digits(rem.unsigned_abs() / 3600, 2);
        out.push(":");
        out.digits(rem.unsigned_abs() % 3600 / 60, 2);
        out.push(":");
        out.digits(rem.unsigned_abs() % 60, 2);
        out.push(" GMT");
        f.write_str(out.as_str())
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (RFC 3339, UTC) for whole seconds since the epoch; years past 9999
/// get more digits.
pub fn rfc3339_seconds(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (days, rem) = (
        secs.div_euclid(86_400),
        secs.rem_euclid(86_400).unsigned_abs(),
    );
    let (year, month, day) = civil_from_days(days);
    let mut out = Ascii::default();
    out.digits(year.unsigned_abs(), 4);
    for (separator, value) in [
        ("-", month.unsigned_abs()),
        ("-", day.unsigned_abs()),
        ("T", rem / 3600),
        (":", rem % 3600 / 60),
        (":", rem % 60),
    ] {
        out.push(separator);
        out.digits(value, 2);
    }
    out.as_str().to_owned()
}

/// A short ASCII string on the stack; what does not fit is dropped. The longest date,
/// `Tue, 20 Apr -271821 00:00:00 GMT`, is exactly 32 bytes.
#[derive(Default)]
struct Ascii {
    bytes: [u8; 32],
    len: usize,
}

impl Ascii {
    fn push(&mut self, text: &str) {
        text.bytes().for_each(|byte| self.byte(byte));
    }

    fn byte(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// `value` in decimal, zero-padded to at least `width` digits.
    fn digits(&mut self, value: u64, width: usize) {
        let mut buf = [b'0'; 20];
        let mut at = buf.len();
        let mut rest = value;
        while rest > 0 || buf.len() - at < width.max(1) {
            at -= 1;
            // A digit: always below 10.
            #[allow(clippy::cast_possible_truncation)]
            let digit = (rest % 10) as u8;
            buf[at] = b'0' + digit;
            rest /= 10;
        }
        buf[at..].iter().for_each(|&digit| self.byte(digit));
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
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
    use proptest::prelude::*;

    fn utc_string(ms: Option<f64>) -> String {
        UtcString(ms).to_string()
    }

    #[test]
    fn rfc3339_seconds_agrees_with_date() {
        // `date -u -d @SECONDS +%FT%T`.
        for (secs, expected) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_798_354_514, "2026-12-27T06:55:14"),
            (4_102_444_799, "2099-12-31T23:59:59"),
            (253_402_300_799, "9999-12-31T23:59:59"),
        ] {
            assert_eq!(rfc3339_seconds(secs), expected);
        }
    }

    /// The formatting this module had before it wrote dates without `format!`, kept to
    /// check the new one against.
    fn reference(ms: f64) -> String {
        #[allow(clippy::cast_possible_truncation)]
        let ms = ms as i64;
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let weekday = WEEKDAYS[usize::try_from(days.rem_euclid(7)).unwrap()];
        let month = MONTHS[usize::try_from(month - 1).unwrap()];
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

    proptest! {
        #[test]
        fn writes_what_format_wrote(ms in -MAX_TIME_MS..=MAX_TIME_MS) {
            prop_assert_eq!(utc_string(Some(ms)), reference(ms));
        }
    }

    #[test]
    fn the_extremes_of_a_date_fit() {
        for ms in [
            -MAX_TIME_MS,
            MAX_TIME_MS,
            -62_198_755_200_000.0,
            253_402_300_800_000.0,
        ] {
            assert_eq!(utc_string(Some(ms)), reference(ms));
        }
        assert_eq!(
            utc_string(Some(MAX_TIME_MS)),
            "Sat, 13 Sep 275760 00:00:00 GMT"
        );
        assert_eq!(
            utc_string(Some(-MAX_TIME_MS)),
            "Tue, 20 Apr -271821 00:00:00 GMT"
        );
    }

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
