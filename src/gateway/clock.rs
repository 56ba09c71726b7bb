//! The clock: wall-clock seconds for counters and windows, and the one timestamp format of every
//! log line. Elapsed time is measured with `std::time::Instant` where it is needed.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Now as [`rfc3339`] writes it: the `ts`/`time` of an access or audit line written now.
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC): the `ts`/`time` of access and audit lines. The date comes
/// from [`crate::policy::window::civil_from_days`], the routine budget windows use.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // u64 seconds / 86 400 always fits an i64.
    let (year, month, day) = crate::policy::window::civil_from_days(days as i64);
    let (h, m, sec, ms) = (rem / 3600, rem % 3600 / 60, rem % 60, u64::from(d.subsec_millis()));
    if !(0..=9999).contains(&year) {
        return format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}.{ms:03}Z");
    }
    // Digits into a fixed buffer: this runs once per request and per audit line, where `format!`
    // with seven padded fields cost more than the rest of the line.
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, h);
    put(14, 2, m);
    put(17, 2, sec);
    put(20, 3, ms);
    b.iter().map(|&c| c as char).collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn rfc3339_formats_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_996_800_123);
        assert_eq!(super::rfc3339(t), "2026-11-30T00:00:00.123Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(951_827_696_007);
        assert_eq!(super::rfc3339(t), "2000-02-29T12:34:56.007Z");
        assert_eq!(super::rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
