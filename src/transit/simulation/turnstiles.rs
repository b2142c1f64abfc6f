//! Turnstile entries: per station per step, drawn from the station's average daily entries for
//! the day type, spread over the day by an hour-of-day curve, with a small random jitter.

use crate::transit::stations::DayType;
use chrono::{Datelike, NaiveDateTime, Weekday};
use rand::Rng;

/// Share of a day's entries in each hour (weekday pattern: morning and evening peaks).
/// Sums to 1.
pub const HOURLY_SHARE: [f64; 24] = [
    0.006, 0.004, 0.003, 0.003, 0.007, 0.020, 0.045, 0.085, 0.095, 0.065, 0.050, 0.048, //
    0.050, 0.050, 0.052, 0.062, 0.078, 0.085, 0.060, 0.040, 0.030, 0.025, 0.020, 0.017,
];

/// Day type of a local date: Sundays and the fixed-date holidays count as Sunday/holiday.
pub fn day_type(t: NaiveDateTime) -> DayType {
    let (m, d) = (t.month(), t.day());
    if matches!((m, d), (1, 1) | (7, 4) | (12, 25)) {
        return DayType::SundayHoliday;
    }
    match t.weekday() {
        Weekday::Sat => DayType::Saturday,
        Weekday::Sun => DayType::SundayHoliday,
        _ => DayType::Weekday,
    }
}

/// Expected entries in a step of `step_minutes` starting in `hour`.
pub fn expected_entries(daily_average: u32, hour: u32, step_minutes: f64) -> f64 {
    daily_average as f64 * HOURLY_SHARE[(hour % 24) as usize] * step_minutes / 60.0
}

/// Draws a whole count: jitter of ±10 %, then random rounding so the mean is kept.
pub fn draw(expected: f64, rng: &mut impl Rng) -> u32 {
    let jittered = expected * rng.random_range(0.9..=1.1);
    let whole = jittered.floor();
    let extra = if rng.random::<f64>() < jittered - whole {
        1.0
    } else {
        0.0
    };
    (whole + extra) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn curve_sums_to_one_day() {
        let total: f64 = HOURLY_SHARE.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        // 288 five-minute steps over a day give back the daily average.
        let day: f64 = (0..288)
            .map(|s| expected_entries(10_000, s / 12, 5.0))
            .sum();
        assert!((day - 10_000.0).abs() < 1e-6, "{day}");
        assert!(expected_entries(1000, 8, 60.0) > expected_entries(1000, 3, 60.0) * 10.0);
    }

    #[test]
    fn draws_keep_the_mean_with_small_jitter() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 20_000;
        let sum: u64 = (0..n).map(|_| draw(12.3, &mut rng) as u64).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean - 12.3).abs() < 0.1, "{mean}");
        for _ in 0..1000 {
            let v = draw(12.3, &mut rng);
            assert!((11..=14).contains(&v), "{v}");
        }
    }

    #[test]
    fn day_types() {
        let d = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        assert_eq!(day_type(d("2026-11-24 08:00")), DayType::Weekday);
        assert_eq!(day_type(d("2026-11-28 08:00")), DayType::Saturday);
        assert_eq!(day_type(d("2026-11-29 08:00")), DayType::SundayHoliday);
        assert_eq!(day_type(d("2026-12-25 08:00")), DayType::SundayHoliday);
    }
}
