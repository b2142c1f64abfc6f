//! The real Confluent stack around the pipeline, each system behind one small client:
//! - [`postgres`]: read the `stations` table (what `load_stations.sql` creates) natively;
//! - [`connect`]: register the Kafka Connect JDBC source that publishes that table instead;
//! - [`rest_proxy`]: post weather through the Confluent REST Proxy (v2, Avro);
//! - [`ksql`]: submit `ksql/*.sql` to ksqlDB and read TURNSTILE_SUMMARY back with pull queries.
//!
//! Everything here talks to outside systems, so every error names the system, its URL (never a
//! password) and what the user can do; nothing panics on what those systems answer. Uses
//! [`crate::stream`] and [`crate::transit`]; the binaries reach it through [`crate::runner`].

pub mod connect;
pub mod ksql;
pub mod postgres;
pub mod rest_proxy;

use std::time::Duration;

/// Timeout of one HTTP request to Connect, REST Proxy or ksqlDB.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An error and its causes on one line ("a: b: c"), skipping causes already in the text.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    flatten(&text)
}

/// Collapses whitespace runs (newlines included) so a message stays on one line.
pub fn flatten(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A short excerpt of an HTTP body for an error message.
pub(crate) fn excerpt(body: &str) -> String {
    let flat = flatten(body);
    if flat.chars().count() > 300 {
        format!("{}…", flat.chars().take(300).collect::<String>())
    } else if flat.is_empty() {
        "(empty body)".to_string()
    } else {
        flat
    }
}

/// Checks that `url` is an absolute http(s) URL; the error names `flag`.
pub(crate) fn check_http_url(flag: &str, url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{flag} '{url}': {e}"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!(
            "{flag} '{url}': expected an http:// or https:// URL"
        ));
    }
    Ok(parsed)
}

/// `base` + `path` with exactly one slash between them.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_causes_and_flattens() {
        let io = std::io::Error::other("line one\nline two");
        assert_eq!(one_line(&io), "line one line two");
        assert_eq!(excerpt(""), "(empty body)");
        assert_eq!(excerpt(&"x".repeat(400)).chars().count(), 301);
        assert!(check_http_url("--connect-url", "ftp://x").is_err());
        assert!(check_http_url("--connect-url", "localhost:8083").is_err());
        assert!(check_http_url("--connect-url", "http://localhost:8083").is_ok());
        assert_eq!(join("http://a/", "/b"), "http://a/b");
    }
}
