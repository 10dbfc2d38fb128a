//! Baselines, custom rules and trends of each model, in the models table beside the
//! registry entry.
//!
//! Items: `pk = "TENANT#<tenant>"`, `sk = "SETTINGS#<model>#<kind>"` with kind
//! `BASELINE` (registered), `CAPTURED` (the first 24 hours), `RULES`, `TRENDS` or
//! `REFERENCE` (the reference window's state); attribute `doc` holds the value as JSON
//! (its serde form), plus `tenant_id`, `model_id`, `updated_at` (epoch ms). One `Query`
//! reads all five. The `SETTINGS#`
//! prefix keeps them out of the registry's `MODEL#` listings.

use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::attr;
use super::registry::tenant_pk;
use super::request::{prefix_query, query_all};
use super::{conditional, doc};
use crate::adapters::limits::{Image, Value};
use crate::domain::ids::{ModelId, ModelRef, TenantId};
use crate::error::StoreResult;
use crate::ports::{ModelSettings, ModelSettingsStore, SettingWrite};

/// The kind of the registered baseline's item.
pub(crate) const BASELINE: &str = "BASELINE";
/// The kind of the captured baseline's item.
pub(crate) const CAPTURED: &str = "CAPTURED";
/// The kind of the custom rules' item.
pub(crate) const RULES: &str = "RULES";
/// The kind of the trends' item.
pub(crate) const TRENDS: &str = "TRENDS";
/// The kind of the reference snapshot's item.
pub(crate) const REFERENCE: &str = "REFERENCE";

/// The sort-key prefix of a model's settings items.
fn settings_prefix(model_id: &ModelId) -> String {
    format!("SETTINGS#{model_id}#")
}

/// The kind and the `doc` (its JSON) of `write`'s item.
pub(crate) fn setting_item(write: SettingWrite<'_>) -> StoreResult<(&'static str, String)> {
    let (kind, doc) = match write {
        SettingWrite::RegisteredBaseline(value) => (BASELINE, settings_doc(value)),
        SettingWrite::CapturedBaseline(value) => (CAPTURED, settings_doc(value)),
        SettingWrite::Rules(value) => (RULES, settings_doc(value)),
        SettingWrite::Trends(value) => (TRENDS, settings_doc(value)),
        SettingWrite::Reference(value) => (REFERENCE, settings_doc(value)),
    };
    Ok((kind, doc?))
}

/// A settings value as the JSON of its `doc`.
fn settings_doc<T: Serialize>(value: &T) -> StoreResult<String> {
    doc::encode(value, "encode model settings")
}

/// The settings item of `kind` holding `doc`, written at `updated_at`.
pub(crate) fn settings_image<'a>(
    tenant: &'a TenantId,
    model_id: &ModelId,
    kind: &str,
    doc: &'a str,
    updated_at: DateTime<Utc>,
) -> Image<'a> {
    Image::default()
        .with("pk", Value::S(tenant_pk(tenant).into()))
        .with(
            "sk",
            Value::S(format!("{}{kind}", settings_prefix(model_id)).into()),
        )
        .with("tenant_id", Value::S(tenant.as_str().into()))
        .with("model_id", Value::S(model_id.to_string().into()))
        .with("updated_at", Value::millis(updated_at))
        .with("doc", Value::S(doc.into()))
}

/// [`ModelSettingsStore`] on DynamoDB (the models table).
#[derive(Debug, Clone)]
pub struct DynamoModelSettings {
    client: Client,
    table: String,
}

impl DynamoModelSettings {
    /// Settings in `table` (the models table).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The client, for the tenant documents kept beside the settings.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// The models table.
    pub(super) fn table(&self) -> &str {
        &self.table
    }
}

impl ModelSettingsStore for DynamoModelSettings {
    async fn model_settings(&self, model: ModelRef<'_>) -> StoreResult<ModelSettings> {
        let ModelRef { tenant, model_id } = model;
        let prefix = settings_prefix(model_id);
        let query = prefix_query(
            &self.client,
            &self.table,
            tenant_pk(tenant),
            prefix.as_str(),
        );
        let items = query_all(query, "read model settings").await?;
        let mut settings = ModelSettings::default();
        for item in &items {
            let sk = attr::read(item, || attr::string(item, "sk"))?;
            match sk.strip_prefix(&prefix) {
                Some(BASELINE) => settings.baselines.registered = Some(doc::decode(item)?),
                Some(CAPTURED) => settings.baselines.captured = Some(doc::decode(item)?),
                Some(RULES) => settings.rules = Some(doc::decode(item)?),
                Some(TRENDS) => settings.trends = Some(doc::decode(item)?),
                Some(REFERENCE) => settings.reference = Some(doc::decode(item)?),
                _ => return Err(attr::corrupt(item, "unknown settings item")),
            }
        }
        Ok(settings)
    }

    async fn put_setting(&self, model: ModelRef<'_>, write: SettingWrite<'_>) -> StoreResult<bool> {
        let ModelRef { tenant, model_id } = model;
        let (kind, doc) = setting_item(write)?;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attr::item(settings_image(
                tenant,
                model_id,
                kind,
                &doc,
                Utc::now(),
            ))));
        if write.only_new() {
            request = request.condition_expression("attribute_not_exists(pk)");
        }
        conditional(request.send().await, "put model settings")
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_mocks::{RuleMode, mock_client};

    use super::super::testing::{Seen, put_rule, seen};
    use super::*;
    use crate::domain::alerting::baseline::RegisteredBaseline;
    use crate::testing::{at, model, tenant};

    #[tokio::test]
    async fn a_settings_item_is_the_item_the_memory_store_sizes() {
        let requests = Seen::default();
        let rule = put_rule(&requests);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let (tenant, model_id) = (tenant("t1"), model("m1"));
        let baseline = RegisteredBaseline {
            test_set: None,
            throughput_forecast_rps: Some(12.5),
            reference: None,
            updated_at: at("2026-11-28T10:00:00Z"),
        };
        let write = SettingWrite::RegisteredBaseline(&baseline);
        DynamoModelSettings::new(client, "models")
            .put_setting(ModelRef::new(&tenant, &model_id), write)
            .await
            .expect("written");
        let requests = seen(&requests);
        let item = requests[0].item().expect("item");
        let (kind, doc) = setting_item(write).expect("doc");
        assert_eq!(kind, BASELINE);
        assert_eq!(
            requests[0].condition_expression(),
            None,
            "a registered baseline replaces"
        );
        let updated_at = attr::time_ms(item, "updated_at").expect("updated_at");
        assert_eq!(
            attr::item_size(item),
            settings_image(&tenant, &model_id, kind, &doc, updated_at).checked_size()
        );
    }

    #[tokio::test]
    async fn a_captured_baseline_is_written_only_where_none_is() {
        use crate::domain::alerting::baseline::CapturedBaseline;
        let requests = Seen::default();
        let rule = put_rule(&requests);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let baseline = CapturedBaseline {
            latency_p95_ms: Some(20.0),
            error_rate: None,
            from: at("2026-11-27T10:00:00Z"),
            to: at("2026-11-28T10:00:00Z"),
            sample_count: 3,
            captured_at: at("2026-11-28T10:01:00Z"),
        };
        let written = DynamoModelSettings::new(client, "models")
            .put_setting(
                ModelRef::new(&tenant("t1"), &model("m1")),
                SettingWrite::CapturedBaseline(&baseline),
            )
            .await
            .expect("written");
        assert!(written);
        assert_eq!(
            seen(&requests)[0].condition_expression(),
            Some("attribute_not_exists(pk)")
        );
    }

    #[tokio::test]
    async fn a_reference_snapshot_is_read_back_as_written() {
        use aws_sdk_dynamodb::operation::query::QueryOutput;
        use aws_smithy_mocks::mock;

        use crate::domain::alerting::baseline::{Reference, ReferenceSnapshot, ReferenceSource};
        use crate::domain::{Outcome, PredictionRecord, Status, WindowState};

        let mut state = WindowState::default();
        for i in 0..50 {
            let record = PredictionRecord {
                timestamp: at("2026-11-27T10:00:00Z"),
                latency_ms: 5.0,
                status: Status::Ok,
                error_type: None,
                outcome: Outcome::Binary {
                    predicted: Some(i % 3 == 0),
                    actual: Some(i % 2 == 0),
                    score: Some(f64::from(i) / 50.0),
                },
            };
            state.fold_prediction(&record).expect("fold");
        }
        let reference = Reference {
            from: at("2026-11-27T10:00:00Z"),
            to: at("2026-11-28T10:00:00Z"),
            source: ReferenceSource::Captured,
        };
        let snapshot = ReferenceSnapshot::new(&reference, &state, at("2026-11-28T10:01:00Z"));
        let requests = Seen::default();
        let put = put_rule(&requests);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let (tenant, model_id) = (tenant("t1"), model("m1"));
        DynamoModelSettings::new(client, "models")
            .put_setting(
                ModelRef::new(&tenant, &model_id),
                SettingWrite::Reference(&snapshot),
            )
            .await
            .expect("written");
        let item = seen(&requests)[0].item().cloned().expect("item");
        assert_eq!(
            attr::string(&item, "sk").ok().as_deref(),
            Some("SETTINGS#m1#REFERENCE")
        );
        let query = mock!(Client::query)
            .then_output(move || QueryOutput::builder().items(item.clone()).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&query]);
        let settings = DynamoModelSettings::new(client, "models")
            .model_settings(ModelRef::new(&tenant, &model_id))
            .await
            .expect("read");
        let read = settings.reference.expect("read back");
        assert_eq!(read.state(), Ok(state));
        assert_eq!(read, snapshot);
    }
}
