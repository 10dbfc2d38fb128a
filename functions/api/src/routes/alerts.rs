//! `GET …/performance/{model_id}/alerts?state=&limit=&next_token=`: the model's alert
//! history, newest first, a page at a time.

use modelwatch::domain::alerting::state::{AlertRecord, AlertState, parse_alert_id};
use modelwatch::domain::ids::ModelId;
use modelwatch::error::StoreResult;
use modelwatch::ports::{AlertQuery, AlertStore, RegisteredModel};
use modelwatch::query::{InvalidParameter, single_values};
use serde::Serialize;

/// Alerts per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 200;

/// Reads `state` (`firing` or `resolved`), `limit` (1–200, default 50) and
/// `next_token` (an alert id, as a previous page returned it); anything else is refused.
pub fn parse_query<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<AlertQuery, InvalidParameter> {
    let [state, limit, next_token] = single_values(params, ["state", "limit", "next_token"])?;
    let state = match state {
        None => None,
        Some("firing") => Some(AlertState::Firing),
        Some("resolved") => Some(AlertState::Resolved),
        Some(other) => {
            return Err(InvalidParameter::value(
                "state",
                other,
                "is not an alert state",
                vec!["firing", "resolved"],
            ));
        }
    };
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n) && text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                InvalidParameter::value(
                    "limit",
                    text,
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    vec!["1..200"],
                )
            })?,
    };
    let after = match next_token {
        None => None,
        Some(token) if parse_alert_id(token).is_some() => Some(token.to_owned()),
        Some(token) => {
            return Err(InvalidParameter::value(
                "next_token",
                token,
                "is not a token of this route (pass `next_token` of the previous page unchanged)",
                Vec::new(),
            ));
        }
    };
    Ok(AlertQuery {
        state,
        limit,
        after,
    })
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertsPage {
    /// The model.
    pub model_id: ModelId,
    /// The alerts, newest `started_at` first.
    pub alerts: Vec<AlertRecord>,
    /// Pass as `next_token` for the next page; `null` on the last page.
    pub next_token: Option<String>,
}

/// One page of `model`'s alert history.
pub async fn page(
    alerts: &impl AlertStore,
    model: &RegisteredModel,
    query: &AlertQuery,
) -> StoreResult<AlertsPage> {
    let page = alerts.alerts(model.key(), query).await?;
    Ok(AlertsPage {
        model_id: model.model_id.clone(),
        alerts: page.alerts,
        next_token: page.next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_valid_values() {
        let query = parse_query([]).expect("defaults");
        assert_eq!(
            query,
            AlertQuery {
                state: None,
                limit: 50,
                after: None
            }
        );
        let query = parse_query([
            ("state", "resolved"),
            ("limit", "200"),
            ("next_token", "default-error_rate@1764324900000"),
        ])
        .expect("valid");
        assert_eq!(query.state, Some(AlertState::Resolved));
        assert_eq!(query.limit, 200);
        assert_eq!(
            query.after.as_deref(),
            Some("default-error_rate@1764324900000")
        );
    }

    #[test]
    fn invalid_values_name_the_parameter_and_what_is_allowed() {
        let cases: [(&[(&str, &str)], &str); 11] = [
            (&[("state", "open")], "state"),
            (&[("limit", "0")], "limit"),
            (&[("limit", "201")], "limit"),
            (&[("limit", "+5")], "limit"),
            (&[("limit", "ten")], "limit"),
            (&[("next_token", "nope")], "next_token"),
            (&[("next_token", "a#b@12")], "next_token"),
            // Well formed, but no store can key a start past 13 digits (year 2286).
            (&[("next_token", "rule@10000000000000")], "next_token"),
            (&[("next_token", "rule-1@123456789012345")], "next_token"),
            (&[("window", "1h")], "window"),
            (&[("limit", "5"), ("limit", "6")], "limit"),
        ];
        for (params, parameter) in cases {
            let err = parse_query(params.iter().copied()).expect_err("invalid");
            assert_eq!(err.parameter, parameter, "{params:?}");
        }
        let err = parse_query([("state", "open")]).expect_err("invalid");
        assert_eq!(err.allowed, ["firing", "resolved"]);
        let err = parse_query([("window", "1h")]).expect_err("unknown");
        assert_eq!(err.allowed, ["state", "limit", "next_token"]);
    }
}
