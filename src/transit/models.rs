//! The CTA records on the wire and in tables, topic names, and the Avro schemas (loaded from
//! the project's `avro/` folder at compile time, never written out again in Rust).

use serde::{Deserialize, Serialize};

pub mod topics {
    pub const ARRIVALS: &str = "org.chicago.cta.stations.arrivals.v1";
    pub const TURNSTILE: &str = "org.chicago.cta.turnstile.v1";
    pub const WEATHER: &str = "org.chicago.cta.weather.v1";
    /// Station rows from Postgres, as Kafka Connect's JDBC source publishes them.
    pub const STATIONS: &str = "org.chicago.cta.stations";
    /// Changelog of the transformed stations table (Faust JSON).
    pub const STATIONS_TABLE: &str = "org.chicago.cta.stations.table.v1";
    /// Changelog of the per-station turnstile count, in ksqlDB's JSON form.
    pub const TURNSTILE_SUMMARY: &str = "TURNSTILE_SUMMARY";
    /// Each closed hourly turnstile window once, JSON [`super::WindowCount`], keyed by the
    /// station id (JSON).
    pub const TURNSTILE_HOURLY: &str = "org.chicago.cta.turnstile.hourly.v1";
}

pub mod schemas {
    pub const ARRIVAL_KEY: &str = include_str!("../../avro/arrival_key.avsc");
    pub const ARRIVAL_VALUE: &str = include_str!("../../avro/arrival_value.avsc");
    pub const TURNSTILE_KEY: &str = include_str!("../../avro/turnstile_key.avsc");
    pub const TURNSTILE_VALUE: &str = include_str!("../../avro/turnstile_value.avsc");
    pub const WEATHER_KEY: &str = include_str!("../../avro/weather_key.avsc");
    pub const WEATHER_VALUE: &str = include_str!("../../avro/weather_value.avsc");
}

/// Key of arrival and weather records: event time in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimestampKey {
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    pub station_id: i32,
    pub train_id: String,
    pub direction: String,
    pub line: String,
    pub train_status: String,
    pub prev_station_id: Option<i32>,
    pub prev_direction: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TurnstileKey {
    pub station_id: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnstileEntry {
    /// An Avro `int` (this project's schema) or a `string` of digits (the original project's
    /// producers register `station_id` as a string).
    #[serde(deserialize_with = "int_or_digits")]
    pub station_id: i32,
    pub station_name: String,
    pub line: String,
}

/// A turnstile entry as the counting reads it: the station id, with the name and line checked
/// (present, strings, UTF-8) as for a [`TurnstileEntry`] but not copied out of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TurnstileStation {
    #[serde(deserialize_with = "int_or_digits")]
    pub station_id: i32,
    #[serde(rename = "station_name")]
    _station_name: CheckedStr,
    #[serde(rename = "line")]
    _line: CheckedStr,
}

/// A string field read and checked, not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CheckedStr;

impl<'de> Deserialize<'de> for CheckedStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnyStr;
        impl serde::de::Visitor<'_> for AnyStr {
            type Value = CheckedStr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<CheckedStr, E> {
                Ok(CheckedStr)
            }
        }
        d.deserialize_str(AnyStr)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherStatus {
    Sunny,
    PartlyCloudy,
    Cloudy,
    Windy,
    Precipitation,
}

impl WeatherStatus {
    pub fn label(self) -> &'static str {
        match self {
            WeatherStatus::Sunny => "sunny",
            WeatherStatus::PartlyCloudy => "partly cloudy",
            WeatherStatus::Cloudy => "cloudy",
            WeatherStatus::Windy => "windy",
            WeatherStatus::Precipitation => "precipitation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weather {
    pub temperature: f32,
    pub status: WeatherStatus,
}

/// Train status values.
pub mod train_status {
    pub const IN_SERVICE: &str = "in_service";
    pub const OUT_OF_SERVICE: &str = "out_of_service";
    pub const BROKEN_DOWN: &str = "broken_down";
}

// ---- table values (JSON, as a Faust table would write them) ----

/// Key of the stations table: a station on one line (Clark/Lake is on two).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StationKey {
    pub line: String,
    pub station_id: i32,
}

/// The transformed station of the stations table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    pub station_id: i32,
    pub station_name: String,
    pub order: i32,
    pub line: String,
}

/// A train's latest arrival: where it stands (the platform of `station_id` in `direction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainSighting {
    pub train_id: String,
    pub line: String,
    pub station_id: i32,
    pub direction: String,
    pub train_status: String,
    /// Event time, ms since the epoch.
    pub timestamp: i64,
    /// No later arrival of the train for 15 minutes of event (simulated) time: set by the
    /// worker's stream-time timer (see `agents::mark_not_reporting`), cleared by its next
    /// arrival.
    #[serde(default)]
    pub not_reporting: bool,
    /// The station's name and stop order, joined from the stations table when the arrival was
    /// processed (a stream-table join with this worker's global copy of the stations; see
    /// `agents::ArrivalsAgent`). `None` when the station's row had not reached the copy yet: a
    /// join looks up, it does not wait, and a later row does not change an earlier sighting.
    #[serde(default)]
    pub station_name: Option<String>,
    #[serde(default)]
    pub order: Option<i32>,
}

/// One row of ksqlDB's TURNSTILE_SUMMARY table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnstileSummary {
    #[serde(rename = "STATION_ID")]
    pub station_id: i32,
    #[serde(rename = "COUNT")]
    pub count: i64,
}

/// Latest weather, with its event time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeatherReading {
    pub temperature: f32,
    pub status: WeatherStatus,
    pub timestamp: i64,
}

/// Entries of one station in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    #[serde(rename = "STATION_ID")]
    pub station_id: i32,
    #[serde(rename = "WINDOW_START")]
    pub window_start: i64,
    #[serde(rename = "WINDOW_END")]
    pub window_end: i64,
    #[serde(rename = "COUNT")]
    pub count: i64,
}

/// An `i32` written as a number or as a string of decimal digits.
fn int_or_digits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    struct IntOrDigits;
    impl serde::de::Visitor<'_> for IntOrDigits {
        type Value = i32;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an int, or a string of decimal digits")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i32, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("'{v}' is not a station id")))
        }
    }
    d.deserialize_any(IntOrDigits)
}
