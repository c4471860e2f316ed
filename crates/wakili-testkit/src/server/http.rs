//! Reading the API's answers in tests: every response is JSON (but a 204), every error has one shape.

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// Status and JSON body; every response of this API is JSON, but a 204's empty body (read as
/// `null`).
///
/// # Panics
/// When the body cannot be read or is not JSON (the message shows it).
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("a readable body");
    if status == StatusCode::NO_CONTENT && text.is_empty() {
        return (status, Value::Null);
    }
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, body)
}

/// The unlabelled sample `name` in the `/metrics` of the server at `base` (any node), if it is
/// there.
///
/// # Panics
/// When `/metrics` does not answer.
pub async fn metric_at(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", base.trim_end_matches('/')))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics has a body");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Asserts the one error shape (`{"error": {"code", "message"}}` with a message) and returns
/// the code.
///
/// Also called only for its assertion, so the result may go unused.
///
/// # Panics
/// When `body` is not an error of that shape.
pub fn error_code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message in {body}"
    );
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error code in {body}"))
}

/// `n` days from today at `hour`:00 UTC, RFC 3339 as the API prints it.
///
/// # Panics
/// When `hour` is not an hour of the day.
#[must_use]
pub fn day(n: i64, hour: u32) -> String {
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(hour, 0, 0)
        .expect("an hour of the day")
        .and_utc();
    (midnight + chrono::Duration::days(n)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_error_code_is_read_from_the_one_shape() {
        let body = json!({"error": {"code": "not_found", "message": "no such consultation"}});
        assert_eq!(error_code(&body), "not_found");
    }

    #[test]
    #[should_panic(expected = "error message")]
    fn an_error_without_a_message_is_refused() {
        let _ = error_code(&json!({"error": {"code": "not_found"}}));
    }

    #[test]
    fn a_day_is_whole_hours_in_utc() {
        let at = day(1, 10);
        assert!(at.ends_with("T10:00:00Z"), "{at}");
    }
}
