//! Typed configuration, read once from the environment at cold start.
//!
//! Every function gets the same variables from the template's `Globals`; each reads
//! the parts it needs. Defaults are the specification's. An invalid value fails the
//! cold start with a [`ConfigError`] naming the variable.

use std::str::FromStr;
use std::time::Duration;

use chrono::TimeDelta;
use thiserror::Error;

use crate::domain::alerting::{AlertSettings, PerfSettings};
use crate::domain::quota::{
    DEFAULT_TENANT_MODELS, DEFAULT_TENANT_PREDICTIONS_PER_MINUTE, DEFAULT_TENANT_RULES_PER_MODEL,
};
use crate::domain::shard::SHARDS;
use crate::domain::slice::{
    DEFAULT_SEGMENT_KEYS_PER_MODEL, DEFAULT_SEGMENT_VALUES_PER_DAY, DEFAULT_VERSIONS_PER_MODEL,
    MAX_SEGMENT_KEYS_PER_PREDICTION, SegmentCaps, check_segment_key,
};

/// The most segment keys exported (each multiplies a model's exported series by its
/// values of the day, up to `MODEL_SEGMENT_VALUES` + 1).
pub const MAX_EXPORTED_SEGMENT_KEYS: usize = 2;
use crate::domain::{CloudWatchMetrics, QuotaLimits};

/// A configuration value that is missing or cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {name} is required but not set")]
    Missing {
        /// The variable's name.
        name: &'static str,
    },
    /// A variable is set to a value that cannot be used.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// The value as found in the environment.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
}

/// How far event times may lie from the time a batch arrives, and how long partials
/// are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestSettings {
    /// `INGEST_MAX_EVENT_AGE_SECONDS`: oldest accepted event (default 7 days).
    pub max_event_age: TimeDelta,
    /// `INGEST_MAX_CLOCK_SKEW_SECONDS`: latest accepted event after arrival (default 5 min).
    pub max_clock_skew: TimeDelta,
    /// `PARTIAL_RETENTION_SECONDS`: TTL of a partial after its minute (default 31 days,
    /// beyond the oldest accepted event and the label lookback, so neither a late
    /// batch nor a late label outlives the partials its minute is re-rolled from).
    pub partial_retention: TimeDelta,
    /// `LABEL_LOOKBACK_DAYS` (default 30): how far back a late label joins its
    /// prediction; predictions awaiting labels are kept that long.
    pub label_lookback: TimeDelta,
    /// `MODEL_VERSIONS` (default 20, 1 to 1,000): the versions kept per model, each
    /// with rollups of its own; predictions of a version first seen past it count
    /// under the model and the overflow slice `version:__other__`.
    pub versions_per_model: u64,
    /// `MODEL_SEGMENT_KEYS` (default 4) and `MODEL_SEGMENT_VALUES` (default 50): the
    /// segment keys kept per model, and the values kept per key and UTC day.
    pub segment_caps: SegmentCaps,
}

/// How long rollups are kept after their start (DynamoDB TTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRetention {
    /// `MINUTE_ROLLUP_RETENTION_DAYS` (default 31): beyond the oldest accepted event and
    /// the label lookback, so an hour re-rolled for a late batch or a late label still
    /// finds all of its minutes.
    pub minute: TimeDelta,
    /// `HOUR_ROLLUP_RETENTION_DAYS` (default 35): the 30-day window at hour granularity.
    pub hour: TimeDelta,
    /// `DAY_ROLLUP_RETENTION_DAYS` (default 400).
    pub day: TimeDelta,
}

/// Names of the DynamoDB tables (see docs/ARCHITECTURE.md for their keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// `PARTIALS_TABLE`: one partial state per (tenant, model, minute, batch).
    pub partials: String,
    /// `ROLLUPS_TABLE`: minute, hour and day rollups.
    pub rollups: String,
    /// `MODELS_TABLE`: model registry, baselines, rules and trends.
    pub models: String,
    /// `ALERTS_TABLE`: alert state and history.
    pub alerts: String,
}

/// Where raw prediction records are archived, when the archive is switched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestreamTarget {
    /// `TIMESTREAM_DATABASE`.
    pub database: String,
    /// `TIMESTREAM_TABLE`.
    pub table: String,
}

/// Everything a modelwatch function is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The specification's `PERF_*` settings.
    pub perf: PerfSettings,
    /// Ingest limits and retention.
    pub ingest: IngestSettings,
    /// Per-tenant quotas unless an operator set others for a tenant:
    /// `TENANT_PREDICTIONS_PER_MINUTE` (default 600,000, 10,000 a second, all models
    /// together), `TENANT_MODELS` (default 10,000) and `TENANT_RULES_PER_MODEL`
    /// (default and most 50, the rule set's ceiling).
    pub quotas: QuotaLimits,
    /// Rollup retention.
    pub rollups: RollupRetention,
    /// Alert evaluation settings.
    pub alerts: AlertSettings,
    /// DynamoDB table names.
    pub tables: TableNames,
    /// `ALERT_TOPIC_ARN`: the SNS topic alerts are published to.
    pub alert_topic_arn: String,
    /// `TIMESTREAM_ENABLED` (default true) with `TIMESTREAM_DATABASE`/`TIMESTREAM_TABLE`;
    /// `None` when the archive is switched off.
    pub timestream: Option<TimestreamTarget>,
    /// `PROMETHEUS_REMOTE_WRITE_URL`: remote-write receiver; `None` when unset or empty.
    pub remote_write_url: Option<String>,
    /// `PROMETHEUS_REMOTE_WRITE_AUTH` as set: `none` (the default when unset),
    /// `basic:<user>:<password>`, `bearer:<token>`, `sigv4` or `sigv4:<region>`
    /// (Amazon Managed Prometheus). The remote-write adapter parses it.
    pub remote_write_auth: Option<Secret>,
    /// `PROMETHEUS_REMOTE_WRITE_AUTH_SECRET`: the name or ARN of a Secrets Manager
    /// secret whose value is a `PROMETHEUS_REMOTE_WRITE_AUTH` setting, read at run
    /// time (nothing secret in the environment); not with `remote_write_auth`.
    pub remote_write_auth_secret: Option<String>,
    /// `PROMETHEUS_REMOTE_WRITE_SECRET_REFRESH_SECONDS` (default 60, at least 1): the
    /// secret is read again after the receiver refuses the credential (401/403), at
    /// most once per this.
    pub remote_write_secret_refresh: Duration,
    /// `CLOUDWATCH_NAMESPACE` (default `ModelWatch`).
    pub cloudwatch_namespace: String,
    /// `CLOUDWATCH_METRICS`: which metrics go to CloudWatch, `off`, `core` or `all`
    /// (the default).
    pub cloudwatch_metrics: CloudWatchMetrics,
    /// `EXPORTED_SEGMENT_KEYS`: the segment keys (comma-separated, at most
    /// [`MAX_EXPORTED_SEGMENT_KEYS`]) whose series are exported like versions'; none by
    /// default (segments are API-only).
    pub exported_segment_keys: Vec<String>,
    /// `TENANT_CLAIM`: the JWT claim that names the tenant (default `tenant_id`).
    pub tenant_claim: String,
    /// Where the scheduled functions' coordinators send the shard work.
    pub shard_queues: ShardQueues,
    /// `SHARD_WORKERS` (default 32, 1 to 32): how many shard workers a fanned-out run
    /// is split among, each given a range of the 32 shards.
    pub shard_workers: u32,
}

/// The shard work queues (SQS FIFO queue URLs); `None` when unset or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardQueues {
    /// `AGGREGATE_SHARD_QUEUE_URL`.
    pub aggregate: Option<String>,
    /// `EVALUATE_SHARD_QUEUE_URL`.
    pub evaluate: Option<String>,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let defaults = PerfSettings::default();
        let perf = PerfSettings {
            monitoring_interval: Duration::from_secs(env.parse_or(
                "PERF_MONITORING_INTERVAL",
                defaults.monitoring_interval.as_secs(),
                |v| (1..=86_400).contains(v),
                "must be a whole number of seconds between 1 and 86400",
            )?),
            accuracy_threshold: env.parse_or(
                "PERF_ACCURACY_THRESHOLD",
                defaults.accuracy_threshold,
                |v: &f64| v.is_finite() && *v > 0.0 && *v < 1.0,
                "must be a fraction strictly between 0 and 1",
            )?,
            latency_p95_max_ms: env.parse_or(
                "PERF_LATENCY_P95_MAX_MS",
                defaults.latency_p95_max_ms,
                |v: &f64| v.is_finite() && *v > 0.0,
                "must be a positive number of milliseconds",
            )?,
            error_rate_max: env.parse_or(
                "PERF_ERROR_RATE_MAX",
                defaults.error_rate_max,
                |v: &f64| v.is_finite() && *v > 0.0 && *v <= 1.0,
                "must be a fraction in (0, 1]",
            )?,
        };
        let seconds = |name: &'static str, default: i64, max: i64| {
            env.parse_or(
                name,
                default,
                |v: &i64| (1..=max).contains(v),
                "must be a whole number of seconds, at least 1",
            )
            .map(TimeDelta::seconds)
        };
        let ingest = IngestSettings {
            max_event_age: seconds("INGEST_MAX_EVENT_AGE_SECONDS", 7 * 86_400, 366 * 86_400)?,
            max_clock_skew: seconds("INGEST_MAX_CLOCK_SKEW_SECONDS", 300, 86_400)?,
            partial_retention: seconds("PARTIAL_RETENTION_SECONDS", 31 * 86_400, 400 * 86_400)?,
            label_lookback: env
                .parse_or(
                    "LABEL_LOOKBACK_DAYS",
                    30,
                    |v: &i64| (1..=366).contains(v),
                    "must be a whole number of days between 1 and 366",
                )
                .map(TimeDelta::days)?,
            versions_per_model: env.parse_or(
                "MODEL_VERSIONS",
                DEFAULT_VERSIONS_PER_MODEL,
                |v: &u64| (1..=1_000).contains(v),
                "must be a whole number of versions between 1 and 1000",
            )?,
            segment_caps: SegmentCaps {
                keys: env.parse_or(
                    "MODEL_SEGMENT_KEYS",
                    DEFAULT_SEGMENT_KEYS_PER_MODEL,
                    |v: &u64| (1..=MAX_SEGMENT_KEYS_PER_PREDICTION as u64).contains(v),
                    "must be a whole number of keys between 1 and 8",
                )?,
                values_per_day: env.parse_or(
                    "MODEL_SEGMENT_VALUES",
                    DEFAULT_SEGMENT_VALUES_PER_DAY,
                    |v: &u64| (1..=1_000).contains(v),
                    "must be a whole number of values between 1 and 1000",
                )?,
            },
        };
        let at_least_one = |name: &'static str, default: u64, most: u64, what: &str| {
            env.parse_or(name, default, |v: &u64| (1..=most).contains(v), what)
        };
        let quotas = QuotaLimits {
            predictions_per_minute: at_least_one(
                "TENANT_PREDICTIONS_PER_MINUTE",
                DEFAULT_TENANT_PREDICTIONS_PER_MINUTE,
                u64::MAX,
                "must be a whole number of predictions, at least 1",
            )?,
            models_per_tenant: at_least_one(
                "TENANT_MODELS",
                DEFAULT_TENANT_MODELS,
                u64::MAX,
                "must be a whole number of models, at least 1",
            )?,
            custom_rules_per_model: at_least_one(
                "TENANT_RULES_PER_MODEL",
                DEFAULT_TENANT_RULES_PER_MODEL,
                DEFAULT_TENANT_RULES_PER_MODEL,
                "must be a whole number of rules between 1 and 50",
            )?,
        };
        // What a late batch or a late label needs must outlive the oldest event ingest
        // accepts and the oldest prediction a label may join.
        let late_data = ingest.max_event_age.max(ingest.label_lookback);
        let outlive_event_age = |name: &'static str, kept: TimeDelta, shown: i64, or: &str| {
            if kept > late_data {
                return Ok(());
            }
            Err(ConfigError::Invalid {
                name,
                value: shown.to_string(),
                reason: format!(
                    "must outlive INGEST_MAX_EVENT_AGE_SECONDS and LABEL_LOOKBACK_DAYS ({} days), or {or}",
                    late_data.num_days()
                ),
            })
        };
        let partials = ingest.partial_retention;
        outlive_event_age(
            "PARTIAL_RETENTION_SECONDS",
            partials,
            partials.num_seconds(),
            "late batches and labels would outlive their partials",
        )?;
        let days = |name: &'static str, default: i64| {
            env.parse_or(
                name,
                default,
                |v: &i64| (1..=3650).contains(v),
                "must be a whole number of days between 1 and 3650",
            )
            .map(TimeDelta::days)
        };
        let rollups = RollupRetention {
            minute: days("MINUTE_ROLLUP_RETENTION_DAYS", 31)?,
            hour: days("HOUR_ROLLUP_RETENTION_DAYS", 35)?,
            day: days("DAY_ROLLUP_RETENTION_DAYS", 400)?,
        };
        outlive_event_age(
            "MINUTE_ROLLUP_RETENTION_DAYS",
            rollups.minute,
            rollups.minute.num_days(),
            "a late batch or label would re-roll an hour from missing minutes",
        )?;
        outlive_event_age(
            "HOUR_ROLLUP_RETENTION_DAYS",
            rollups.hour,
            rollups.hour.num_days(),
            "a late batch or label would re-roll a day from missing hours",
        )?;
        let count = |name: &'static str, default: u64| {
            env.parse_or(
                name,
                default,
                |v: &u64| *v <= 1_000_000_000,
                "must be a whole number from 0 to 1000000000",
            )
        };
        let renotify = env.parse_or(
            "ALERT_RENOTIFY_SECONDS",
            0_i64,
            |v: &i64| (0..=30 * 86_400).contains(v),
            "must be a whole number of seconds from 0 (never) to 2592000",
        )?;
        let exported_segment_keys: Vec<String> = env
            .optional("EXPORTED_SEGMENT_KEYS")
            .map(|raw| raw.split(',').map(|k| k.trim().to_owned()).collect())
            .unwrap_or_default();
        if exported_segment_keys.len() > MAX_EXPORTED_SEGMENT_KEYS
            || exported_segment_keys
                .iter()
                .any(|k| check_segment_key(k).is_err())
        {
            return Err(ConfigError::Invalid {
                name: "EXPORTED_SEGMENT_KEYS",
                value: exported_segment_keys.join(","),
                reason: format!(
                    "must be at most {MAX_EXPORTED_SEGMENT_KEYS} comma-separated segment keys (ids without ':')"
                ),
            });
        }
        let version_rule = match env.optional("VERSION_REGRESSION_MIN_LABELED") {
            None => None,
            Some(off) if off == "off" => None,
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if (30..=1_000_000_000).contains(&n) => Some(n),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "VERSION_REGRESSION_MIN_LABELED",
                        value: raw,
                        reason: "must be off or a whole number from 30 to 1000000000".into(),
                    });
                }
            },
        };
        let alerts = AlertSettings {
            min_labeled: count("ALERT_MIN_LABELED_SAMPLES", 30)?,
            min_predictions: count("ALERT_MIN_PREDICTIONS", 30)?,
            renotify_after: (renotify > 0).then(|| TimeDelta::seconds(renotify)),
            version_rule_min_samples: version_rule,
        };
        let tables = TableNames {
            partials: env.required("PARTIALS_TABLE")?,
            rollups: env.required("ROLLUPS_TABLE")?,
            models: env.required("MODELS_TABLE")?,
            alerts: env.required("ALERTS_TABLE")?,
        };
        let timestream_enabled = env.parse_or(
            "TIMESTREAM_ENABLED",
            true,
            |_| true,
            "must be true or false",
        )?;
        let timestream = if timestream_enabled {
            Some(TimestreamTarget {
                database: env.required("TIMESTREAM_DATABASE")?,
                table: env.required("TIMESTREAM_TABLE")?,
            })
        } else {
            None
        };
        let remote_write_url = env.optional("PROMETHEUS_REMOTE_WRITE_URL");
        if let Some(url) = &remote_write_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                name: "PROMETHEUS_REMOTE_WRITE_URL",
                value: url.clone(),
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        let remote_write_auth = env.optional("PROMETHEUS_REMOTE_WRITE_AUTH").map(Secret);
        let remote_write_auth_secret = env.optional("PROMETHEUS_REMOTE_WRITE_AUTH_SECRET");
        if remote_write_auth.is_some() && remote_write_auth_secret.is_some() {
            return Err(ConfigError::Invalid {
                name: "PROMETHEUS_REMOTE_WRITE_AUTH_SECRET",
                value: remote_write_auth_secret.unwrap_or_default(),
                reason: "is set beside PROMETHEUS_REMOTE_WRITE_AUTH; set one of them".into(),
            });
        }
        let remote_write_secret_refresh = Duration::from_secs(env.parse_or(
            "PROMETHEUS_REMOTE_WRITE_SECRET_REFRESH_SECONDS",
            60,
            |v: &u64| *v >= 1,
            "must be a whole number of seconds, at least 1",
        )?);
        Ok(Self {
            quotas,
            perf,
            remote_write_auth,
            remote_write_auth_secret,
            remote_write_secret_refresh,
            ingest,
            rollups,
            alerts,
            tables,
            alert_topic_arn: env.required("ALERT_TOPIC_ARN")?,
            timestream,
            remote_write_url,
            cloudwatch_namespace: env
                .optional("CLOUDWATCH_NAMESPACE")
                .unwrap_or_else(|| "ModelWatch".into()),
            cloudwatch_metrics: env.parse_or(
                "CLOUDWATCH_METRICS",
                CloudWatchMetrics::All,
                |_| true,
                "must be off, core or all",
            )?,
            exported_segment_keys,
            tenant_claim: env
                .optional("TENANT_CLAIM")
                .unwrap_or_else(|| "tenant_id".into()),
            shard_queues: ShardQueues {
                aggregate: env.optional("AGGREGATE_SHARD_QUEUE_URL"),
                evaluate: env.optional("EVALUATE_SHARD_QUEUE_URL"),
            },
            shard_workers: env.parse_or(
                "SHARD_WORKERS",
                SHARDS,
                |w| (1..=SHARDS).contains(w),
                "must be a whole number from 1 to 32",
            )?,
        })
    }
}

/// A setting that may hold a secret: its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Variable lookups with the error reporting every setting shares.
struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// The trimmed value, `None` when unset or blank.
    fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing { name })
    }

    /// Parses `name` when set, else `default`; `valid` states the allowed range.
    fn parse_or<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        valid: impl Fn(&T) -> bool,
        reason: &str,
    ) -> Result<T, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(v) if valid(&v) => Ok(v),
            _ => Err(ConfigError::Invalid {
                name,
                value: raw,
                reason: reason.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("PARTIALS_TABLE", "partials"),
            ("ROLLUPS_TABLE", "rollups"),
            ("MODELS_TABLE", "models"),
            ("ALERTS_TABLE", "alerts"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            ("TIMESTREAM_DATABASE", "modelwatch"),
            ("TIMESTREAM_TABLE", "predictions"),
        ])
    }

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_are_the_specifications() {
        let cfg = load(&base()).expect("valid config");
        assert_eq!(cfg.perf.monitoring_interval, Duration::from_secs(60));
        assert_eq!(cfg.perf.accuracy_threshold, 0.05);
        assert_eq!(cfg.perf.latency_p95_max_ms, 100.0);
        assert_eq!(cfg.perf.error_rate_max, 0.01);
        assert_eq!(cfg.ingest.max_event_age, TimeDelta::days(7));
        assert_eq!(cfg.ingest.max_clock_skew, TimeDelta::minutes(5));
        assert_eq!(cfg.ingest.partial_retention, TimeDelta::days(31));
        assert_eq!(cfg.ingest.label_lookback, TimeDelta::days(30));
        assert_eq!(cfg.ingest.versions_per_model, 20);
        assert_eq!(cfg.ingest.segment_caps, SegmentCaps::default());
        assert_eq!(cfg.alerts.version_rule_min_samples, None);
        assert!(cfg.exported_segment_keys.is_empty());
        assert_eq!(cfg.rollups.minute, TimeDelta::days(31));
        assert_eq!(cfg.rollups.hour, TimeDelta::days(35));
        assert_eq!(cfg.rollups.day, TimeDelta::days(400));
        assert_eq!(cfg.tenant_claim, "tenant_id");
        assert_eq!(cfg.cloudwatch_namespace, "ModelWatch");
        assert_eq!(cfg.cloudwatch_metrics, CloudWatchMetrics::All);
        assert_eq!(cfg.remote_write_url, None);
        assert_eq!(cfg.remote_write_auth, None);
        assert_eq!(cfg.remote_write_auth_secret, None);
        assert_eq!(cfg.remote_write_secret_refresh, Duration::from_secs(60));
        assert_eq!(cfg.quotas, QuotaLimits::default());
        assert_eq!(cfg.shard_queues, ShardQueues::default());
        assert_eq!(cfg.shard_workers, 32);
        assert_eq!(
            cfg.timestream,
            Some(TimestreamTarget {
                database: "modelwatch".into(),
                table: "predictions".into()
            })
        );
    }

    #[test]
    fn explicit_values_override_defaults() {
        let mut vars = base();
        vars.insert("PERF_MONITORING_INTERVAL", "30");
        vars.insert("PERF_ACCURACY_THRESHOLD", "0.1");
        vars.insert("PERF_LATENCY_P95_MAX_MS", "250.5");
        vars.insert("PERF_ERROR_RATE_MAX", "0.02");
        vars.insert("TENANT_CLAIM", "custom:tenant");
        vars.insert(
            "PROMETHEUS_REMOTE_WRITE_URL",
            "http://127.0.0.1:9090/api/v1/write",
        );
        vars.insert("TIMESTREAM_ENABLED", "false");
        vars.insert("CLOUDWATCH_METRICS", "core");
        vars.insert("SHARD_WORKERS", "4");
        vars.insert("AGGREGATE_SHARD_QUEUE_URL", "http://sqs/aggregate.fifo");
        vars.remove("TIMESTREAM_DATABASE");
        let cfg = load(&vars).expect("valid config");
        assert_eq!(cfg.perf.monitoring_interval, Duration::from_secs(30));
        assert_eq!(cfg.perf.accuracy_threshold, 0.1);
        assert_eq!(cfg.perf.latency_p95_max_ms, 250.5);
        assert_eq!(cfg.perf.error_rate_max, 0.02);
        assert_eq!(cfg.tenant_claim, "custom:tenant");
        assert_eq!(cfg.timestream, None);
        assert_eq!(cfg.cloudwatch_metrics, CloudWatchMetrics::Core);
        assert_eq!(cfg.shard_workers, 4);
        assert_eq!(
            cfg.shard_queues.aggregate.as_deref(),
            Some("http://sqs/aggregate.fifo")
        );
        assert_eq!(cfg.shard_queues.evaluate, None);
        assert_eq!(
            cfg.remote_write_url.as_deref(),
            Some("http://127.0.0.1:9090/api/v1/write")
        );
    }

    #[test]
    fn the_remote_write_credential_is_a_setting_or_a_secret_not_both() {
        let mut vars = base();
        vars.insert(
            "PROMETHEUS_REMOTE_WRITE_AUTH_SECRET",
            "modelwatch/remote-write",
        );
        vars.insert("PROMETHEUS_REMOTE_WRITE_SECRET_REFRESH_SECONDS", "5");
        let cfg = load(&vars).expect("a secret");
        assert_eq!(
            cfg.remote_write_auth_secret.as_deref(),
            Some("modelwatch/remote-write")
        );
        assert_eq!(cfg.remote_write_secret_refresh, Duration::from_secs(5));
        vars.insert("PROMETHEUS_REMOTE_WRITE_AUTH", "bearer:token");
        let err = load(&vars).expect_err("both");
        assert!(err.to_string().contains("set one of them"), "{err}");
        assert!(!err.to_string().contains("token"), "{err}");
    }

    #[test]
    fn exported_segment_keys_are_a_short_list() {
        let mut vars = base();
        vars.insert("EXPORTED_SEGMENT_KEYS", " region , channel ");
        let cfg = load(&vars).expect("two keys");
        assert_eq!(cfg.exported_segment_keys, ["region", "channel"]);
    }

    #[test]
    fn the_version_rule_is_off_unless_given_its_samples() {
        for (value, expected) in [("off", None), ("200", Some(200)), ("30", Some(30))] {
            let mut vars = base();
            vars.insert("VERSION_REGRESSION_MIN_LABELED", value);
            let cfg = load(&vars).expect(value);
            assert_eq!(cfg.alerts.version_rule_min_samples, expected, "{value}");
        }
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("PERF_MONITORING_INTERVAL", "soon"),
            ("PERF_MONITORING_INTERVAL", "0"),
            ("PERF_ACCURACY_THRESHOLD", "NaN"),
            ("PERF_ACCURACY_THRESHOLD", "1.5"),
            ("PERF_LATENCY_P95_MAX_MS", "-1"),
            ("PERF_ERROR_RATE_MAX", "inf"),
            ("TIMESTREAM_ENABLED", "yes"),
            ("CLOUDWATCH_METRICS", "some"),
            ("SHARD_WORKERS", "0"),
            ("SHARD_WORKERS", "33"),
            ("PROMETHEUS_REMOTE_WRITE_URL", "ftp://x"),
            ("INGEST_MAX_EVENT_AGE_SECONDS", "0"),
            ("INGEST_MAX_CLOCK_SKEW_SECONDS", "x"),
            ("PARTIAL_RETENTION_SECONDS", "3600"),
            ("MINUTE_ROLLUP_RETENTION_DAYS", "2"),
            ("HOUR_ROLLUP_RETENTION_DAYS", "7"),
            ("DAY_ROLLUP_RETENTION_DAYS", "0"),
            ("LABEL_LOOKBACK_DAYS", "0"),
            ("LABEL_LOOKBACK_DAYS", "367"),
            ("MODEL_VERSIONS", "0"),
            ("VERSION_REGRESSION_MIN_LABELED", "29"),
            ("VERSION_REGRESSION_MIN_LABELED", "on"),
            ("MODEL_SEGMENT_KEYS", "9"),
            ("EXPORTED_SEGMENT_KEYS", "region,channel,tier"),
            ("EXPORTED_SEGMENT_KEYS", "re:gion"),
            ("EXPORTED_SEGMENT_KEYS", "region,"),
            ("MODEL_SEGMENT_VALUES", "0"),
            ("MODEL_VERSIONS", "1001"),
            ("PROMETHEUS_REMOTE_WRITE_SECRET_REFRESH_SECONDS", "0"),
            ("TENANT_PREDICTIONS_PER_MINUTE", "0"),
            ("TENANT_MODELS", "-1"),
            ("TENANT_RULES_PER_MODEL", "51"),
        ] {
            let mut vars = base();
            vars.insert(name, value);
            let err = load(&vars).expect_err(name);
            assert!(
                matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn every_retention_a_late_label_needs_must_outlive_the_lookback() {
        let mut vars = base();
        vars.insert("LABEL_LOOKBACK_DAYS", "60");
        let err = load(&vars).expect_err("partials kept 31 days");
        assert!(
            matches!(
                &err,
                ConfigError::Invalid {
                    name: "PARTIAL_RETENTION_SECONDS",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("LABEL_LOOKBACK_DAYS (60 days)"),
            "{err}"
        );
        vars.insert("PARTIAL_RETENTION_SECONDS", "6000000");
        let err = load(&vars).expect_err("minute rollups kept 31 days");
        assert!(
            matches!(
                &err,
                ConfigError::Invalid {
                    name: "MINUTE_ROLLUP_RETENTION_DAYS",
                    ..
                }
            ),
            "{err}"
        );
        vars.insert("MINUTE_ROLLUP_RETENTION_DAYS", "61");
        vars.insert("HOUR_ROLLUP_RETENTION_DAYS", "61");
        assert_eq!(
            load(&vars).map(|c| c.ingest.label_lookback),
            Ok(TimeDelta::days(60))
        );
    }

    #[test]
    fn missing_required_variables_are_named() {
        for name in [
            "PARTIALS_TABLE",
            "ROLLUPS_TABLE",
            "MODELS_TABLE",
            "ALERTS_TABLE",
            "ALERT_TOPIC_ARN",
            "TIMESTREAM_TABLE",
        ] {
            let mut vars = base();
            vars.insert(name, "  ");
            assert_eq!(load(&vars), Err(ConfigError::Missing { name }));
        }
    }
}
