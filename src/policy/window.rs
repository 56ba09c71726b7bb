//! Budget windows: calendar days, ISO weeks and calendar months, all in UTC.
//!
//! A window is named by a key that is also the suffix of its spend counter and the `window` of
//! an AgentPolicy's `status.spend`: `2026-11-24` (day), `2026-W48` (ISO 8601 week, which starts
//! on Monday and belongs to the year of its Thursday, so 2027-01-03 is in `2026-W53`), `2026-11`
//! (month). Times are Unix seconds; leap seconds do not exist in Unix time, so every day is
//! 86 400 seconds long.

use crate::config::BudgetWindow;

const DAY: u64 = 86_400;

/// The key of the window that contains `unix_seconds`.
pub fn window_key(window: BudgetWindow, unix_seconds: u64) -> String {
    let days = days_of(unix_seconds);
    match window {
        BudgetWindow::Day => {
            let (y, m, d) = civil_from_days(days);
            format!("{y:04}-{m:02}-{d:02}")
        }
        BudgetWindow::Week => {
            let (y, w) = iso_week(days);
            format!("{y:04}-W{w:02}")
        }
        BudgetWindow::Month => {
            let (y, m, _) = civil_from_days(days);
            format!("{y:04}-{m:02}")
        }
    }
}

/// The first second of the window that contains `unix_seconds`.
pub fn window_start(window: BudgetWindow, unix_seconds: u64) -> u64 {
    let days = days_of(unix_seconds);
    let start = match window {
        BudgetWindow::Day => days,
        BudgetWindow::Week => days - (iso_weekday(days) - 1),
        BudgetWindow::Month => {
            let (y, m, _) = civil_from_days(days);
            days_from_civil(y, m, 1)
        }
    };
    seconds_of(start)
}

/// The first second after the window that contains `unix_seconds` (the start of the next
/// window): `window_end(w, now) - now` is the `Retry-After` of a blocked budget.
pub fn window_end(window: BudgetWindow, unix_seconds: u64) -> u64 {
    let days = days_of(unix_seconds);
    let end = match window {
        BudgetWindow::Day => days + 1,
        BudgetWindow::Week => days - (iso_weekday(days) - 1) + 7,
        BudgetWindow::Month => {
            let (y, m, _) = civil_from_days(days);
            if m == 12 { days_from_civil(y + 1, 1, 1) } else { days_from_civil(y, m + 1, 1) }
        }
    };
    seconds_of(end)
}

fn days_of(unix_seconds: u64) -> i64 {
    // u64 seconds / 86 400 always fits an i64.
    (unix_seconds / DAY) as i64
}

fn seconds_of(days: i64) -> u64 {
    // Only called with days at or after the epoch.
    u64::try_from(days).unwrap_or(0) * DAY
}

/// Monday = 1 … Sunday = 7. Day 0 (1970-01-01) was a Thursday.
fn iso_weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7) + 1
}

/// ISO year and week number of a day: the week's Thursday decides the year.
fn iso_week(days: i64) -> (i64, i64) {
    let thursday = days - (iso_weekday(days) - 1) + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week)
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day count since 1970-01-01 of a date (the inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use BudgetWindow::{Day, Month, Week};

    // Reference values from GNU `date -u -d '<date> 13:45:10' +%s` and `+%G-W%V`.
    const TUE_2026_11_24: u64 = 1_795_527_910;
    const MON_2026_12_28: u64 = 1_798_465_510;
    const THU_2026_12_31: u64 = 1_798_724_710;
    const SUN_2027_01_03: u64 = 1_798_983_910;
    const MON_2027_01_04: u64 = 1_799_070_310;
    const FRI_2021_01_01: u64 = 1_609_508_710;
    const MON_2024_12_30: u64 = 1_735_566_310;
    const MON_2008_12_29: u64 = 1_230_558_310;
    const SUN_2010_01_03: u64 = 1_262_526_310;
    const TUE_2000_02_29: u64 = 951_831_910;

    #[test]
    fn day_week_and_month_keys_of_a_known_date() {
        assert_eq!(window_key(Day, TUE_2026_11_24), "2026-11-24");
        assert_eq!(window_key(Week, TUE_2026_11_24), "2026-W48");
        assert_eq!(window_key(Month, TUE_2026_11_24), "2026-11");
    }

    #[test]
    fn keys_at_the_epoch() {
        assert_eq!(window_key(Day, 0), "1970-01-01");
        assert_eq!(window_key(Week, 0), "1970-W01");
        assert_eq!(window_key(Month, 0), "1970-01");
    }

    #[test]
    fn iso_week_53_and_the_year_it_belongs_to() {
        assert_eq!(window_key(Week, MON_2026_12_28), "2026-W53");
        assert_eq!(window_key(Week, THU_2026_12_31), "2026-W53");
        // Sunday 2027-01-03 is still in 2026's last week, but in 2027's first day window.
        assert_eq!(window_key(Week, SUN_2027_01_03), "2026-W53");
        assert_eq!(window_key(Day, SUN_2027_01_03), "2027-01-03");
        assert_eq!(window_key(Month, SUN_2027_01_03), "2027-01");
        assert_eq!(window_key(Week, MON_2027_01_04), "2027-W01");
        assert_eq!(window_key(Week, FRI_2021_01_01), "2020-W53");
        assert_eq!(window_key(Week, SUN_2010_01_03), "2009-W53");
    }

    #[test]
    fn late_december_days_can_belong_to_next_years_week_one() {
        assert_eq!(window_key(Week, MON_2024_12_30), "2025-W01");
        assert_eq!(window_key(Day, MON_2024_12_30), "2024-12-30");
        assert_eq!(window_key(Week, MON_2008_12_29), "2009-W01");
    }

    #[test]
    fn leap_day() {
        assert_eq!(window_key(Day, TUE_2000_02_29), "2000-02-29");
        assert_eq!(window_key(Week, TUE_2000_02_29), "2000-W09");
        // 2000-03-01 00:00 UTC
        assert_eq!(window_end(Day, TUE_2000_02_29), 951_868_800);
        assert_eq!(window_end(Month, TUE_2000_02_29), 951_868_800);
    }

    #[test]
    fn window_ends_are_the_next_windows_start() {
        // 2026-11-25, Monday 2026-11-30 and 2026-12-01, each 00:00 UTC.
        assert_eq!(window_end(Day, TUE_2026_11_24), 1_795_564_800);
        assert_eq!(window_end(Week, TUE_2026_11_24), 1_795_996_800);
        assert_eq!(window_end(Month, TUE_2026_11_24), 1_796_083_200);
        // 2026-11-24 00:00 UTC; the Monday before, 2026-11-23; 2026-11-01.
        assert_eq!(window_start(Day, TUE_2026_11_24), 1_795_478_400);
        assert_eq!(window_start(Week, TUE_2026_11_24), 1_795_478_400 - 86_400);
        assert_eq!(window_start(Month, TUE_2026_11_24), 1_795_478_400 - 23 * 86_400);
    }

    #[test]
    fn window_ends_across_the_year_end() {
        // 2027-01-01 00:00 UTC closes December and the last day of 2026.
        assert_eq!(window_end(Month, THU_2026_12_31), 1_798_761_600);
        assert_eq!(window_end(Day, THU_2026_12_31), 1_798_761_600);
        // Week 2026-W53 ends on Monday 2027-01-04 00:00 UTC.
        assert_eq!(window_end(Week, MON_2026_12_28), 1_799_020_800);
        assert_eq!(window_end(Week, SUN_2027_01_03), 1_799_020_800);
        assert_eq!(window_start(Week, MON_2027_01_04), 1_799_020_800);
        // Friday 2021-01-01 is in 2020-W53, which ends on Monday 2021-01-04.
        assert_eq!(window_end(Week, FRI_2021_01_01), 1_609_718_400);
        // The first week of 1970 started on Monday 1969-12-29; it ends on 1970-01-05.
        assert_eq!(window_end(Week, 0), 345_600);
    }

    #[test]
    fn a_window_contains_its_start_but_not_its_end() {
        for w in [Day, Week, Month] {
            let start = window_start(w, TUE_2026_11_24);
            let end = window_end(w, TUE_2026_11_24);
            assert_eq!(window_key(w, start), window_key(w, TUE_2026_11_24));
            assert_eq!(window_key(w, end - 1), window_key(w, TUE_2026_11_24));
            assert_ne!(window_key(w, end), window_key(w, TUE_2026_11_24));
            assert_eq!(window_end(w, start), end);
        }
    }

    #[test]
    fn civil_conversion_round_trips_over_four_centuries() {
        let mut prev = civil_from_days(-1);
        for days in 0..146_097 * 2 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            // Consecutive days: either the next day of the month, or day 1 of the next month.
            assert!((y, m, d) == (prev.0, prev.1, prev.2 + 1) || d == 1, "{prev:?} -> {:?}", (y, m, d));
            prev = (y, m, d);
        }
    }
}
