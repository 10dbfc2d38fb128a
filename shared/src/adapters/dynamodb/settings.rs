//! Baselines, custom rules and trends of each model, in the models table beside the
//! registry entry.
//!
//! Items: `pk = "TENANT#<tenant>"`, `sk = "SETTINGS#<model>#<kind>"` with kind
//! `BASELINE` (registered), `CAPTURED` (the first 24 hours), `RULES` or `TRENDS`;
//! attribute `doc` holds the value as JSON (its serde form), plus `tenant_id`,
//! `model_id`, `updated_at` (epoch ms). One `Query` reads all four. The `SETTINGS#`
//! prefix keeps them out of the registry's `MODEL#` listings.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::attr::{self, Item};
use super::{conditional, unavailable};
use crate::alerting::baseline::{CapturedBaseline, RegisteredBaseline};
use crate::alerting::rules::CustomRules;
use crate::alerting::trends::TrendReport;
use crate::error::StoreError;
use crate::ids::{ModelId, TenantId};
use crate::ports::{ModelSettings, ModelSettingsStore};

const BASELINE: &str = "BASELINE";
const CAPTURED: &str = "CAPTURED";
const RULES: &str = "RULES";
const TRENDS: &str = "TRENDS";

/// The sort-key prefix of a model's settings items.
fn settings_prefix(model_id: &ModelId) -> String {
    format!("SETTINGS#{model_id}#")
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

    /// Writes one settings item; with `only_new`, unless it exists (returns whether
    /// it was written).
    async fn put<T: Serialize>(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        kind: &str,
        value: &T,
        only_new: bool,
    ) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(value).map_err(|e| StoreError::Internal {
            operation: "encode model settings",
            source: Box::new(e),
        })?;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .item(
                "sk",
                AttributeValue::S(format!("{}{kind}", settings_prefix(model_id))),
            )
            .item("tenant_id", AttributeValue::S(tenant.to_string()))
            .item("model_id", AttributeValue::S(model_id.to_string()))
            .item("updated_at", attr::time_ms_value(Utc::now()))
            .item("doc", AttributeValue::S(doc));
        if only_new {
            request = request.condition_expression("attribute_not_exists(pk)");
        }
        conditional(request.send().await, "put model settings")
    }
}

/// The value of a settings item's `doc`.
fn decode<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let doc = attr::string(item, "doc").map_err(|e| attr::corrupt(item, e.to_string()))?;
    serde_json::from_str(&doc).map_err(|e| attr::corrupt(item, format!("doc: {e}")))
}

impl ModelSettingsStore for DynamoModelSettings {
    async fn model_settings(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
    ) -> Result<ModelSettings, StoreError> {
        let prefix = settings_prefix(model_id);
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| unavailable("read model settings", e))?;
        let mut settings = ModelSettings::default();
        for item in &items {
            let sk = attr::string(item, "sk").map_err(|e| attr::corrupt(item, e.to_string()))?;
            match sk.strip_prefix(&prefix) {
                Some(BASELINE) => settings.baselines.registered = Some(decode(item)?),
                Some(CAPTURED) => settings.baselines.captured = Some(decode(item)?),
                Some(RULES) => settings.rules = Some(decode(item)?),
                Some(TRENDS) => settings.trends = Some(decode(item)?),
                _ => return Err(attr::corrupt(item, "unknown settings item")),
            }
        }
        Ok(settings)
    }

    async fn put_registered_baseline(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        baseline: &RegisteredBaseline,
    ) -> Result<(), StoreError> {
        self.put(tenant, model_id, BASELINE, baseline, false)
            .await
            .map(drop)
    }

    async fn put_captured_baseline(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        baseline: &CapturedBaseline,
    ) -> Result<bool, StoreError> {
        self.put(tenant, model_id, CAPTURED, baseline, true).await
    }

    async fn put_rules(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        rules: &CustomRules,
    ) -> Result<(), StoreError> {
        self.put(tenant, model_id, RULES, rules, false)
            .await
            .map(drop)
    }

    async fn put_trends(
        &self,
        tenant: &TenantId,
        model_id: &ModelId,
        trends: &TrendReport,
    ) -> Result<(), StoreError> {
        self.put(tenant, model_id, TRENDS, trends, false)
            .await
            .map(drop)
    }
}
