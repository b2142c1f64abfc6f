//! Hourly weather: a random walk of the temperature pulled toward Chicago's seasonal and daily
//! mean, and a status that mostly persists and fits the temperature.

use crate::transit::models::{Weather, WeatherStatus};
use rand::Rng;

/// Mean daily temperature in °F per month (Chicago normals).
pub const MONTHLY_MEAN_F: [f32; 12] = [
    26.0, 30.0, 40.0, 51.0, 62.0, 72.0, 76.0, 75.0, 67.0, 55.0, 42.0, 31.0,
];

#[derive(Debug, Clone)]
pub struct WeatherModel {
    pub current: Weather,
}

/// Target temperature for a month (1–12) and hour: seasonal mean plus a daily swing peaking
/// mid-afternoon.
pub fn seasonal_target(month: u32, hour: u32) -> f32 {
    let base = MONTHLY_MEAN_F[((month.clamp(1, 12)) - 1) as usize];
    let phase = (hour as f32 - 9.0) / 24.0 * std::f32::consts::TAU;
    base + 8.0 * phase.sin()
}

impl WeatherModel {
    pub fn new(month: u32, hour: u32, rng: &mut impl Rng) -> Self {
        Self {
            current: Weather {
                temperature: seasonal_target(month, hour) + rng.random_range(-5.0..5.0),
                status: WeatherStatus::PartlyCloudy,
            },
        }
    }

    /// Advances one hour.
    pub fn step(&mut self, month: u32, hour: u32, rng: &mut impl Rng) -> Weather {
        let target = seasonal_target(month, hour);
        let t = self.current.temperature;
        let next = t + 0.3 * (target - t) + rng.random_range(-2.0..2.0);
        let status = if rng.random::<f64>() < 0.7 {
            self.current.status
        } else {
            let options = [
                WeatherStatus::Sunny,
                WeatherStatus::PartlyCloudy,
                WeatherStatus::Cloudy,
                WeatherStatus::Windy,
                WeatherStatus::Precipitation,
            ];
            options[rng.random_range(0..options.len())]
        };
        self.current = Weather {
            temperature: (next * 10.0).round() / 10.0,
            status,
        };
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn walk_stays_near_the_season() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for month in [1u32, 7] {
            let mut m = WeatherModel::new(month, 0, &mut rng);
            let mut sum = 0.0;
            let mut statuses = std::collections::HashSet::new();
            for h in 0..24 * 60 {
                let w = m.step(month, h % 24, &mut rng);
                sum += w.temperature as f64;
                statuses.insert(format!("{:?}", w.status));
                let mean = MONTHLY_MEAN_F[(month - 1) as usize];
                assert!(
                    (w.temperature - mean).abs() < 25.0,
                    "{month}: {}",
                    w.temperature
                );
            }
            let avg = sum / (24.0 * 60.0);
            assert!(
                (avg - MONTHLY_MEAN_F[(month - 1) as usize] as f64).abs() < 3.0,
                "{avg}"
            );
            assert!(statuses.len() >= 4);
        }
    }
}
