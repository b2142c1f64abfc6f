//! Confluent-framed Avro round trip through the embedded registry, and the specific error for
//! each kind of bad payload.

#[path = "../common/mod.rs"]
mod common;

use cta_stream::stream::codec::confluent::SubjectSchema;
use cta_stream::stream::testing::unique_name;
use cta_stream::stream::{AvroDecoder, AvroEncoder, DecodeError};
use cta_stream::transit::models::{schemas, Arrival, Weather, WeatherStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_round_trip_and_bad_payloads() {
    let env = common::env().await;
    let topic = unique_name("codec-test");
    let enc = AvroEncoder::new(&env.registry).unwrap();
    let arrival = Arrival {
        station_id: 40380,
        train_id: "BL003".into(),
        direction: "a".into(),
        line: "blue".into(),
        train_status: "in_service".into(),
        prev_station_id: Some(40490),
        prev_direction: None,
    };
    let bytes = enc
        .encode(
            &arrival,
            &SubjectSchema::new(&topic, false, schemas::ARRIVAL_VALUE).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(bytes[0], 0, "magic byte");
    let weather = Weather {
        temperature: 41.5,
        status: WeatherStatus::PartlyCloudy,
    };
    let wbytes = enc
        .encode(
            &weather,
            &SubjectSchema::new(&format!("{topic}-w"), false, schemas::WEATHER_VALUE).unwrap(),
        )
        .await
        .unwrap();
    // The id in the frame is the one the registry holds for the subject.
    let (_, latest) = common::get_json(&format!(
        "{}/subjects/{topic}-value/versions/latest",
        env.registry.url
    ))
    .await;
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    assert_eq!(latest["id"].as_u64(), Some(id as u64));

    let dec = AvroDecoder::new(&env.registry).unwrap();
    tokio::task::spawn_blocking(move || {
        assert_eq!(dec.decode::<Arrival>(Some(&bytes)).unwrap(), arrival);
        assert_eq!(dec.decode::<Weather>(Some(&wbytes)).unwrap(), weather);
        let mut bad_magic = bytes.clone();
        bad_magic[0] = 7;
        assert!(matches!(
            dec.decode::<Arrival>(Some(&bad_magic)),
            Err(DecodeError::BadMagic(7))
        ));
        let mut unknown = bytes.clone();
        unknown[1..5].copy_from_slice(&9999u32.to_be_bytes());
        assert!(matches!(
            dec.decode::<Arrival>(Some(&unknown)),
            Err(DecodeError::UnknownSchema { id: 9999, .. })
        ));
        let truncated = &bytes[..bytes.len() - 3];
        assert!(matches!(
            dec.decode::<Arrival>(Some(truncated)),
            Err(DecodeError::Avro { .. })
        ));
        assert!(matches!(
            dec.decode::<Arrival>(Some(&bytes[..3])),
            Err(DecodeError::TooShort(3))
        ));
        // A weather record is not an arrival.
        assert!(dec.decode::<Arrival>(Some(&wbytes)).is_err());
    })
    .await
    .unwrap();
}
