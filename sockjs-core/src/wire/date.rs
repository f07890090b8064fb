//! The `Date` header's value (RFC 9110 §5.6.7, IMF-fixdate), formatted from a time the
//! caller read: the codec reads no clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// A time as IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`: what a response's `Date`
/// carries (RFC 9110 §6.6.1: an origin server with a clock sends it).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use sockjs_core::wire::HttpDate;
///
/// let date = HttpDate::from(UNIX_EPOCH + Duration::from_secs(784_111_777));
/// assert_eq!(date.as_str(), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpDate {
    text: [u8; 29],
    /// The whole second it shows, since the epoch: a cache keeps one per second.
    second: u64,
}

impl HttpDate {
    /// The value, 29 ASCII bytes.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, letters, spaces, commas and colons are ever written.
        std::str::from_utf8(&self.text).unwrap_or("")
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// The whole second since the epoch it shows.
    pub fn second(&self) -> u64 {
        self.second
    }
}

impl std::fmt::Debug for HttpDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SystemTime> for HttpDate {
    /// Times before 1970 show as its first second; times past the year 9999 as its last.
    fn from(time: SystemTime) -> HttpDate {
        const LAST: u64 = 253_402_300_799; // 9999-12-31 23:59:59
        let second = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
            .min(LAST);
        let days = second / 86_400;
        let of_day = second % 86_400;
        let (year, month, day) = civil(days);
        const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
        const MONTHS: [&[u8; 3]; 12] = [
            b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
            b"Dec",
        ];
        let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        text[..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
        two(&mut text[5..7], day);
        text[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
        two(&mut text[12..14], year / 100);
        two(&mut text[14..16], year % 100);
        two(&mut text[17..19], of_day / 3600);
        two(&mut text[20..22], of_day / 60 % 60);
        two(&mut text[23..25], of_day % 60);
        HttpDate { text, second }
    }
}

/// Two decimal digits of `n` (under 100).
fn two(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// The proleptic Gregorian (year, month 1–12, day 1–31) of `days` since 1970-01-01.
fn civil(days: u64) -> (u64, u64, u64) {
    // Counted in 400-year eras from 0000-03-01, so that the leap day ends each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let of_era = z % 146_097;
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(second: u64) -> String {
        HttpDate::from(UNIX_EPOCH + Duration::from_secs(second))
            .as_str()
            .to_owned()
    }

    #[test]
    fn rfc9110_s5_6_7_imf_fixdate() {
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
        assert_eq!(at(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(at(1_796_428_800), "Sat, 05 Dec 2026 00:00:00 GMT");
        assert_eq!(at(u64::MAX / 2), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(
            HttpDate::from(UNIX_EPOCH - Duration::from_secs(1)).as_str(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
