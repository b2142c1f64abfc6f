//! JSON codec.

use crate::error::DecodeError;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub fn decode<T: DeserializeOwned>(payload: Option<&[u8]>) -> Result<T, DecodeError> {
    let bytes = payload.ok_or(DecodeError::Empty)?;
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing plain data structs with derived impls cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct S {
        a: i32,
        b: String,
    }

    #[test]
    fn round_trip_and_errors() {
        let v = S {
            a: 7,
            b: "x&y".into(),
        };
        let bytes = encode(&v);
        assert_eq!(bytes, br#"{"a":7,"b":"x&y"}"#);
        assert_eq!(decode::<S>(Some(&bytes)).unwrap(), v);
        assert!(matches!(decode::<S>(None), Err(DecodeError::Empty)));
        assert!(matches!(
            decode::<S>(Some(b"{\"a\":")),
            Err(DecodeError::Json(_))
        ));
    }
}
