//! The binaries' side: flags (clap, with env-var fallbacks) and exit codes, shared by `cta`, `simulation` and `worker` (each includes this module; the library does not
//! know it). Flags become the library's plain option types here; nothing else happens here.

mod connect;
mod sim;
mod worker;

pub use connect::{EndpointArgs, KafkaPropertyArgs};
pub use sim::{ArgError, SimArgs, SimIntegrationArgs};
pub use worker::{WorkerArgs, WorkerIntegrationArgs};

use cta_stream::endpoints::EndpointError;

/// Whether an error (or one of its causes) is a configuration mistake the user fixes in the
/// flags: the binaries exit with code 2 for those, 1 for everything else.
pub fn is_config_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<EndpointError>() || e.is::<ArgError>() {
            return true;
        }
        if let Some(e) = e.downcast_ref::<cta_stream::runner::RunError>() {
            if e.is_config() {
                return true;
            }
        }
        if let Some(e) = e.downcast_ref::<cta_stream::stream::StreamError>() {
            if e.is_config() {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// Exit code for an error: 2 for configuration mistakes, 1 otherwise.
pub fn exit_code(err: &(dyn std::error::Error + 'static)) -> u8 {
    if is_config_error(err) {
        2
    } else {
        1
    }
}

/// A binary's outcome as its exit status: 0, or the error on one line and [`exit_code`].
pub fn report(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: many errors name their cause in their own text as well.
            eprintln!("error: {}", cta_stream::integrations::one_line(e.as_ref()));
            std::process::ExitCode::from(exit_code(e.as_ref()))
        }
    }
}

/// A duration flag: whole seconds (`5`) or with a unit (`300ms`, `5s`, `5m`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}': {e} (examples: 5s, 300ms, 5m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_exit_2() {
        let e = EndpointError::MissingBrokers;
        assert_eq!(exit_code(&e), 2);
        let run = cta_stream::runner::RunError::Ksql(
            cta_stream::integrations::ksql::KsqlError::Config("--ksql-url 'x'".into()),
        );
        assert_eq!(exit_code(&run), 2);
        let other = cta_stream::runner::RunError::Ksql(
            cta_stream::integrations::ksql::KsqlError::Unreachable {
                url: "http://k".into(),
                reason: "refused".into(),
            },
        );
        assert_eq!(exit_code(&other), 1);
        // A consumer group the broker refuses for a configuration reason stops with exit 2
        // (librdkafka would retry it forever); a passing broker fault is left to its retries.
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        let refused = cta_stream::stream::StreamError::group_refused(
            &KafkaError::MessageConsumption(RDKafkaErrorCode::InvalidSessionTimeout),
        )
        .expect("invalid session timeout is not retried");
        assert!(
            refused.to_string().contains("session.timeout.ms"),
            "{refused}"
        );
        assert_eq!(exit_code(&cta_stream::runner::RunError::Stream(refused)), 2);
        assert!(
            cta_stream::stream::StreamError::group_refused(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure
            ))
            .is_none()
        );
    }
}
