//! Routes an API Gateway request to the domain and maps the answer to HTTP: the tenant
//! from the authorizer, the route and its method, the query parameters, the model
//! (scoped to the tenant), the body of a `PUT`, then the route's module.

use chrono::Utc;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use modelwatch::alerting::subscriptions::{current_subscriptions, replace_subscriptions};
use modelwatch::domain::alerting::Problems;
use modelwatch::domain::alerting::baseline::parse_baseline;
use modelwatch::domain::alerting::rules::parse_rule_set;
use modelwatch::domain::alerting::subscriptions::parse_subscriptions;
use modelwatch::domain::alerting::{AlertSettings, PerfSettings};
use modelwatch::domain::ids::{ModelId, ModelRef, TenantId};
use modelwatch::domain::{OverQuota, Quota, QuotaLimits};
use modelwatch::edge::{json_response, non_json_content_type, tenant_of};
use modelwatch::error::{StoreError, StoreResult};
use modelwatch::ports::{
    AlertStore, ModelRegistry, ModelSettings, ModelSettingsStore, RegisteredModel, RollupStore,
    SettingWrite, SubscriptionStore, TopicSubscriptions,
};
use modelwatch::query::single_values;
use modelwatch::summary::slices::{CompareQuery, segments_of, versions_of};
use modelwatch::summary::{SummaryQuery, SummaryService};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use crate::refusal::Refusal;
use crate::routes::alert_rules::{self, Thresholds};
use crate::routes::baseline::BaselineView;
use crate::routes::trends::TrendsView;
use crate::routes::{ModelResource, Route, alerts, models};

/// The largest `PUT` body accepted, bytes (more is 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API's dependencies, built once at cold start.
pub struct Api<R, S, M, A, T> {
    /// The model registry.
    pub registry: R,
    /// The summary service over the rollups and the models' settings (baselines,
    /// rules and trends, which the other routes read and write through it too).
    pub summary: SummaryService<S, M>,
    /// Rule states and the alert history.
    pub alerts: A,
    /// The specification's `PERF_*` thresholds (the default rules derive from them).
    pub perf: PerfSettings,
    /// Alert evaluation settings (default minimum samples of a rule).
    pub alert_settings: AlertSettings,
    /// The deployment's per-tenant quotas (an operator may override them per tenant).
    pub quotas: QuotaLimits,
    /// The alert topic's subscriptions (a tenant's e-mail and SQS subscriptions).
    pub topic: T,
    /// The deployment's AWS account: a tenant may subscribe SQS queues of it only.
    pub account: String,
    /// The JWT claim naming the tenant.
    pub tenant_claim: String,
}

/// A webhook's signing secret: 32 bytes from the operating system's random source, as
/// `whsec_` and 64 hex digits.
fn new_signing_secret() -> StoreResult<String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Internal {
        operation: "make a webhook signing secret",
        source: Box::new(e),
    })?;
    Ok(bytes.iter().fold(String::from("whsec_"), |mut text, byte| {
        text.push_str(&format!("{byte:02x}"));
        text
    }))
}

/// 200 with `body` as JSON.
fn ok(body: &impl Serialize) -> Result<Response<Body>, Refusal> {
    Ok(json_response(StatusCode::OK, body))
}

/// Refuses every query parameter (for the routes that take none).
fn no_parameters(request: &Request) -> Result<(), Refusal> {
    let params = request.query_string_parameters();
    single_values(params.iter(), [])?;
    Ok(())
}

/// The body of a `PUT` as JSON: 415 when declared as something else, 413 over
/// [`MAX_BODY_BYTES`], 400 when it does not parse.
fn json_body(request: &Request) -> Result<Value, Refusal> {
    if let Some(content_type) = non_json_content_type(request) {
        return Err(Refusal::MediaType(content_type));
    }
    let bytes = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Refusal::TooLarge {
            size: bytes.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|err| {
        let mut problems = Problems::default();
        problems.push("", &format!("is not valid JSON: {err}"));
        Refusal::Body(problems)
    })
}

impl<R, S, M, A, T> Api<R, S, M, A, T>
where
    R: ModelRegistry,
    S: RollupStore,
    M: ModelSettingsStore + SubscriptionStore,
    A: AlertStore,
    T: TopicSubscriptions,
{
    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Error> {
        Ok(self
            .answer(&request)
            .await
            .unwrap_or_else(Refusal::into_response))
    }

    async fn answer(&self, request: &Request) -> Result<Response<Body>, Refusal> {
        let tenant = tenant_of(request, &self.tenant_claim)
            .ok_or_else(|| Refusal::NoTenant(self.tenant_claim.clone()))?;
        // Every log line of the request names its tenant (beside the runtime's
        // request id).
        let span = tracing::info_span!("request", tenant = %tenant);
        self.route(request, &tenant).instrument(span).await
    }

    /// The answer of the route `request` names, for `tenant`.
    async fn route(&self, request: &Request, tenant: &TenantId) -> Result<Response<Body>, Refusal> {
        let path = request.uri().path();
        let route = Route::parse(path).ok_or_else(|| Refusal::NoRoute(path.to_owned()))?;
        let method = request.method();
        if !route.methods().contains(method) {
            return Err(Refusal::Method(route.methods()));
        }
        match route {
            Route::Models => {
                no_parameters(request)?;
                ok(&models::list(&self.registry, &self.alerts, tenant).await?)
            }
            // POST is routed to the ingest function; reaching `api` is a misrouting.
            Route::Predictions => Err(Refusal::NoRoute(path.to_owned())),
            Route::AlertSubscriptions => {
                no_parameters(request)?;
                let settings = &self.summary.settings;
                if method == Method::PUT {
                    let body = json_body(request)?;
                    let targets =
                        parse_subscriptions(&body, &self.account).map_err(Refusal::Body)?;
                    let now = Utc::now();
                    let replaced = replace_subscriptions(
                        settings,
                        &self.topic,
                        tenant,
                        targets,
                        now,
                        new_signing_secret,
                    );
                    ok(&replaced.await?)
                } else {
                    ok(&current_subscriptions(settings, tenant).await?)
                }
            }
            Route::Model { model_id, resource } => {
                self.model_route(request, tenant, model_id, resource).await
            }
        }
    }

    /// A route of one model: its query parameters, then the model, then the route.
    async fn model_route(
        &self,
        request: &Request,
        tenant: &TenantId,
        model_id: &str,
        resource: ModelResource,
    ) -> Result<Response<Body>, Refusal> {
        let params = request.query_string_parameters();
        let thresholds = Thresholds {
            perf: &self.perf,
            alerts: &self.alert_settings,
        };
        let now = Utc::now();
        let put = request.method() == Method::PUT;
        match resource {
            ModelResource::Summary => {
                let query = SummaryQuery::parse(params.iter())?;
                let model = self.model(tenant, model_id).await?;
                ok(&self.summary.summary_of(&model, query, now).await?)
            }
            ModelResource::Versions => {
                no_parameters(request)?;
                let model = self.model(tenant, model_id).await?;
                let rollups = &self.summary.window.rollups;
                ok(&versions_of(&self.registry, rollups, &model).await?)
            }
            ModelResource::Segments => {
                no_parameters(request)?;
                let model = self.model(tenant, model_id).await?;
                let rollups = &self.summary.window.rollups;
                ok(&segments_of(&self.registry, rollups, &model, now).await?)
            }
            ModelResource::Compare => {
                let query = CompareQuery::parse(params.iter())?;
                let model = self.model(tenant, model_id).await?;
                ok(&self.summary.compare(&model, &query, now).await?)
            }
            ModelResource::Alerts => {
                let query = alerts::parse_query(params.iter())?;
                let model = self.model(tenant, model_id).await?;
                ok(&alerts::page(&self.alerts, &model, &query).await?)
            }
            ModelResource::Trends => {
                no_parameters(request)?;
                let model = self.model(tenant, model_id).await?;
                let stored = self.stored(&model).await?;
                ok(&TrendsView::of(&model, stored.trends))
            }
            ModelResource::AlertRules => {
                no_parameters(request)?;
                let model = self.model(tenant, model_id).await?;
                if put {
                    let body = json_body(request)?;
                    let rules = parse_rule_set(&body, model_id, &self.alert_settings, now)
                        .map_err(Refusal::Body)?;
                    self.within_rules_quota(tenant, rules.alert_rules.len())
                        .await?;
                    let key = model.key();
                    self.summary
                        .settings
                        .put_setting(key, SettingWrite::Rules(&rules))
                        .await?;
                }
                ok(
                    &alert_rules::view(&self.summary.settings, &self.alerts, &model, thresholds)
                        .await?,
                )
            }
            ModelResource::Baseline => {
                no_parameters(request)?;
                let model = self.model(tenant, model_id).await?;
                if put {
                    let body = json_body(request)?;
                    let baseline = parse_baseline(&body, model.task, now).map_err(Refusal::Body)?;
                    let key = model.key();
                    self.summary
                        .settings
                        .put_setting(key, SettingWrite::RegisteredBaseline(&baseline))
                        .await?;
                }
                let stored = self.stored(&model).await?;
                ok(&BaselineView::of(&model, stored.baselines))
            }
        }
    }

    /// Refuses a rule set of `rules` custom rules over the tenant's quota of rules per
    /// model (the operator's override read on each `PUT`, a rare request).
    async fn within_rules_quota(&self, tenant: &TenantId, rules: usize) -> Result<(), Refusal> {
        let overrides = self.registry.tenant_quotas(tenant).await?;
        let limit = self.quotas.with_overrides(overrides).custom_rules_per_model;
        let requested = rules as u64;
        if requested > limit {
            return Err(Refusal::OverQuota(OverQuota::standing(
                Quota::CustomRulesPerModel,
                limit,
                requested,
            )));
        }
        Ok(())
    }

    /// What the models table holds about `model` (baselines, rules, trends).
    async fn stored(&self, model: &RegisteredModel) -> StoreResult<ModelSettings> {
        self.summary.settings.model_settings(model.key()).await
    }

    /// The tenant's model `model_id`: 404 when the tenant has none by that id (also
    /// when another tenant has, and for an id that cannot be stored).
    async fn model(&self, tenant: &TenantId, model_id: &str) -> Result<RegisteredModel, Refusal> {
        let unknown = || Refusal::UnknownModel(model_id.to_owned());
        let id = ModelId::parse(model_id).map_err(|_| unknown())?;
        self.registry
            .model(ModelRef::new(tenant, &id))
            .await?
            .ok_or_else(unknown)
    }
}

#[cfg(test)]
mod tests;
