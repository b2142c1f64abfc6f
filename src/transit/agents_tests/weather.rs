//! Weather readings and bad records.

use super::*;

#[test]
fn weather_keeps_the_latest_reading() {
    let mut f = fixture();
    let reading = |t: f32, s: WeatherStatus| Weather {
        temperature: t,
        status: s,
    };
    for (i, w) in [
        reading(31.5, WeatherStatus::Windy),
        reading(33.0, WeatherStatus::Sunny),
    ]
    .iter()
    .enumerate()
    {
        let value = f.avro(topics::WEATHER, schemas::WEATHER_VALUE, w);
        let at = START_MS + i as i64 * MIN;
        f.driver
            .pipe(TestRecord::new(topics::WEATHER).value(value).at(at))
            .unwrap();
    }
    let latest = f.tables.weather.get_all(&WEATHER_KEY.to_string()).unwrap();
    let want = WeatherReading {
        temperature: 33.0,
        status: WeatherStatus::Sunny,
        timestamp: START_MS + MIN,
    };
    assert_eq!(latest, vec![want]);
}

#[test]
fn bad_records_go_to_dead_letters_and_change_no_table() {
    let mut f = fixture();
    f.turnstile(123, START_MS);
    let hot = reading_value(&f, 500.0);
    f.driver
        .pipe(TestRecord::new(topics::WEATHER).value(hot))
        .unwrap();
    f.driver
        .pipe(TestRecord::new(topics::WEATHER).value(b"not avro"))
        .unwrap();
    f.arrival("T9", 41_450, "x", START_MS);
    assert_eq!(f.driver.dead_lettered(), 4);
    let turnstile = f.dead_letter_errors(topics::TURNSTILE);
    assert!(turnstile[0].contains("station_id 123"), "{turnstile:?}");
    let weather = f.dead_letter_errors(topics::WEATHER);
    assert!(weather[0].contains("temperature 500"), "{weather:?}");
    assert!(weather[1].contains("magic"), "{weather:?}");
    let arrivals = f.dead_letter_errors(topics::ARRIVALS);
    assert!(arrivals[0].contains("direction 'x'"), "{arrivals:?}");
    assert!(f.tables.weather.items().unwrap().is_empty());
    assert!(f.tables.trains.items().unwrap().is_empty());
    assert!(f
        .tables
        .turnstile
        .native()
        .unwrap()
        .items()
        .unwrap()
        .is_empty());
}

fn reading_value(f: &Fixture, temperature: f32) -> Vec<u8> {
    let w = Weather {
        temperature,
        status: WeatherStatus::Cloudy,
    };
    f.avro(topics::WEATHER, schemas::WEATHER_VALUE, &w)
}
