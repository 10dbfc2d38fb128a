//! The routes of the API, read from the request path, and one module per resource.
//!
//! Routing is by path, not by API Gateway's route key: the template routes each
//! documented method of each path here, and everything else under
//! `/api/v1/monitoring/` through the catch-all `ANY …/{proxy+}`, so that a wrong
//! method still gets a 405 naming the allowed ones, and an unknown path a 404, in the
//! API's own error shape.

pub mod alert_rules;
pub mod alerts;
pub mod baseline;
pub mod models;
pub mod trends;

use lambda_http::http::Method;

/// Every route's path starts here.
const PREFIX: &str = "/api/v1/monitoring/";

/// What a model-scoped route (`/api/v1/monitoring/performance/{model_id}…`) serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelResource {
    /// `…/{model_id}`: the performance summary.
    Summary,
    /// `…/{model_id}/trends`: the seven-day trends.
    Trends,
    /// `…/{model_id}/alert-rules`: custom and default alert rules.
    AlertRules,
    /// `…/{model_id}/baseline`: registered and captured baselines.
    Baseline,
    /// `…/{model_id}/alerts`: the alert history.
    Alerts,
    /// `…/{model_id}/versions`: the versions kept, with their counts.
    Versions,
    /// `…/{model_id}/segments`: the segment keys and recent values kept, with their
    /// counts.
    Segments,
    /// `…/{model_id}/compare`: two slices side by side.
    Compare,
}

/// A route of the monitoring API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/api/v1/monitoring/models`.
    Models,
    /// `/api/v1/monitoring/predictions`: served by the `ingest` function (`POST`);
    /// other methods reach `api` through the catch-all route and get a 405.
    Predictions,
    /// `/api/v1/monitoring/alert-subscriptions`: the tenant's alert subscriptions.
    AlertSubscriptions,
    /// A route of one model.
    Model {
        /// The model id as it stands in the path (not yet validated).
        model_id: &'a str,
        /// What is asked of it.
        resource: ModelResource,
    },
}

impl<'a> Route<'a> {
    /// The route of `path` (a trailing `/` ignored), or `None` when there is none.
    pub fn parse(path: &'a str) -> Option<Self> {
        let rest = path.trim_end_matches('/').strip_prefix(PREFIX)?;
        let mut segments = rest.split('/');
        let route = match (segments.next(), segments.next(), segments.next()) {
            (Some("models"), None, _) => Self::Models,
            (Some("predictions"), None, _) => Self::Predictions,
            (Some("alert-subscriptions"), None, _) => Self::AlertSubscriptions,
            (Some("performance"), Some(model_id), sub) if !model_id.is_empty() => {
                let resource = match sub {
                    None => ModelResource::Summary,
                    Some("trends") => ModelResource::Trends,
                    Some("alert-rules") => ModelResource::AlertRules,
                    Some("baseline") => ModelResource::Baseline,
                    Some("alerts") => ModelResource::Alerts,
                    Some("versions") => ModelResource::Versions,
                    Some("segments") => ModelResource::Segments,
                    Some("compare") => ModelResource::Compare,
                    Some(_) => return None,
                };
                Self::Model { model_id, resource }
            }
            _ => return None,
        };
        segments.next().is_none().then_some(route)
    }

    /// The methods the route answers.
    pub fn methods(self) -> &'static [Method] {
        match self {
            Self::Predictions => &[Method::POST],
            Self::AlertSubscriptions
            | Self::Model {
                resource: ModelResource::AlertRules | ModelResource::Baseline,
                ..
            } => &[Method::GET, Method::PUT],
            Self::Models | Self::Model { .. } => &[Method::GET],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use modelwatch::domain::Task;
    use modelwatch::domain::ids::{ModelId, TenantId};
    use modelwatch::ports::RegisteredModel;

    /// A time from RFC 3339.
    pub fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339 time")
    }

    /// Tenant `t`'s model `id` of `task`, first seen 2026-11-27T10:00:00Z.
    pub fn model(id: &str, task: Task) -> RegisteredModel {
        RegisteredModel {
            tenant: TenantId::parse("t").expect("tenant"),
            model_id: ModelId::parse(id).expect("model"),
            task,
            first_seen: at("2026-11-27T10:00:00Z"),
            last_seen: at("2026-11-28T10:00:00Z"),
            latest_version: None,
        }
    }

    #[test]
    fn paths_map_to_routes() {
        let model = |resource| Route::Model {
            model_id: "m-1",
            resource,
        };
        let cases = [
            ("/api/v1/monitoring/models", Some(Route::Models)),
            ("/api/v1/monitoring/models/", Some(Route::Models)),
            ("/api/v1/monitoring/predictions", Some(Route::Predictions)),
            (
                "/api/v1/monitoring/alert-subscriptions",
                Some(Route::AlertSubscriptions),
            ),
            (
                "/api/v1/monitoring/performance/m-1",
                Some(model(ModelResource::Summary)),
            ),
            (
                "/api/v1/monitoring/performance/m-1/trends",
                Some(model(ModelResource::Trends)),
            ),
            (
                "/api/v1/monitoring/performance/m-1/alert-rules/",
                Some(model(ModelResource::AlertRules)),
            ),
            (
                "/api/v1/monitoring/performance/m-1/baseline",
                Some(model(ModelResource::Baseline)),
            ),
            (
                "/api/v1/monitoring/performance/m-1/alerts",
                Some(model(ModelResource::Alerts)),
            ),
            (
                "/api/v1/monitoring/performance/m-1/versions",
                Some(model(ModelResource::Versions)),
            ),
            (
                "/api/v1/monitoring/performance/m-1/segments",
                Some(model(ModelResource::Segments)),
            ),
            (
                "/api/v1/monitoring/performance/m-1/compare",
                Some(model(ModelResource::Compare)),
            ),
            ("/api/v1/monitoring/performance/m-1/other", None),
            ("/api/v1/monitoring/performance/m-1/alerts/x", None),
            ("/api/v1/monitoring/performance/", None),
            ("/api/v1/monitoring/performance//trends", None),
            ("/api/v1/monitoring/models/x", None),
            ("/api/v1/monitoring", None),
            ("/api/v2/monitoring/models", None),
            ("/", None),
        ];
        for (path, route) in cases {
            assert_eq!(Route::parse(path), route, "{path}");
        }
    }

    #[test]
    fn rules_and_baselines_are_written_with_put() {
        let rules = Route::parse("/api/v1/monitoring/performance/m/alert-rules").expect("route");
        assert_eq!(rules.methods(), [Method::GET, Method::PUT]);
        let trends = Route::parse("/api/v1/monitoring/performance/m/trends").expect("route");
        assert_eq!(trends.methods(), [Method::GET]);
        assert_eq!(Route::Predictions.methods(), [Method::POST]);
    }
}
