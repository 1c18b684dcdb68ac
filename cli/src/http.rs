//! The HTTP side shared by the commands that talk to a worker: the client, Herald's error answers,
//! `POST /v1/tickets`, and query strings.

use std::time::Duration;

use crate::args::CliError;

/// How long a connection (TCP and TLS) may take to open.
const CONNECT_TIMEOUT_S: u64 = 10;

/// A client with no pool of idle connections: every request opens its own, so a connection the
/// worker closed while idle can never take down a request after it was sent (a publish must know
/// whether its request may have reached the worker; see `publish`). `read_timeout` bounds each read
/// (a stream's idle time); `None` leaves reads unbounded.
pub(crate) fn agent(read_timeout: Option<Duration>) -> ureq::Agent {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(CONNECT_TIMEOUT_S))
        .max_idle_connections(0)
        .user_agent(concat!("herald-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(timeout) = read_timeout {
        builder = builder.timeout_read(timeout);
    }
    builder.build()
}

/// An error answer as one line: `401 unauthorized: token expired` from Herald's
/// `{"error": code, "message": text}`, or the status and the start of whatever else the body was.
pub(crate) fn describe(status: u16, response: ureq::Response) -> String {
    let body = response.into_string().unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(json) if json["error"].is_string() => format!(
            "{status} {}: {}",
            json["error"].as_str().unwrap_or_default(),
            json["message"].as_str().unwrap_or_default()
        ),
        _ => {
            let text: String = body.trim().chars().take(200).collect();
            if text.is_empty() {
                format!("{status}")
            } else {
                format!("{status}: {text}")
            }
        }
    }
}

/// Whether a transport error happened before the request was sent: the name did not resolve, or the
/// connection (TCP or TLS) could not be opened. Such a request never reached the worker.
pub(crate) fn failed_before_sending(error: &ureq::Transport) -> bool {
    matches!(
        error.kind(),
        ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed
    )
}

/// Trades an access token for a ticket to subscribe to `stream` (`POST /v1/tickets`).
///
/// A connection error is [`TicketError::Unreachable`], so that a caller that retries can; any
/// answer other than a ticket is [`CliError::Failed`].
pub(crate) fn request_ticket(
    agent: &ureq::Agent,
    base: &str,
    token: &str,
    stream: &str,
) -> Result<String, TicketError> {
    let body = serde_json::json!({ "connectionId": stream }).to_string();
    let answer = agent
        .post(&format!("{base}/v1/tickets"))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", "application/json")
        .timeout(Duration::from_secs(30))
        .send_string(&body);
    let response = match answer {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            return Err(TicketError::Refused(format!(
                "POST /v1/tickets: {}",
                describe(status, response)
            )))
        }
        Err(ureq::Error::Transport(error)) => {
            return Err(TicketError::Unreachable(format!(
                "POST /v1/tickets: {error}"
            )))
        }
    };
    let text = response
        .into_string()
        .map_err(|e| TicketError::Unreachable(format!("POST /v1/tickets: {e}")))?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    json["ticket"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| TicketError::Refused(format!("POST /v1/tickets answered {text:?}")))
}

/// Why no ticket came.
#[derive(Debug)]
pub(crate) enum TicketError {
    /// The worker could not be reached, or the answer was cut: worth trying again.
    Unreachable(String),
    /// The worker refused (the token is bad, lacks the scope or the stream) or answered nonsense.
    Refused(String),
}

/// [`request_ticket`] for `herald ticket`, where any failure ends the command.
pub(crate) fn fetch_ticket(
    agent: &ureq::Agent,
    base: &str,
    token: &str,
    stream: &str,
) -> Result<String, CliError> {
    request_ticket(agent, base, token, stream).map_err(|error| match error {
        TicketError::Unreachable(message) | TicketError::Refused(message) => {
            CliError::Failed(message)
        }
    })
}

/// Appends `name=value` to a URL, percent-encoding the value (Herald's ids, filters and tokens are
/// plain ASCII; anything else is encoded so that the URL stays one).
pub(crate) fn push_query(url: &mut String, name: &str, value: &str) {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(name);
    url.push('=');
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~:,".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_appended_and_encoded() {
        let mut url = String::from("http://h/v1/streams/s");
        push_query(&mut url, "types", "job,queue:snapshot");
        push_query(&mut url, "ticket", "a b&c=d");
        assert_eq!(
            url,
            "http://h/v1/streams/s?types=job,queue:snapshot&ticket=a%20b%26c%3Dd"
        );
    }
}
