//! The reads of every DynamoDB adapter against a mocked client: the exact `Query` or
//! `Scan` each one sends, and the error each one answers when DynamoDB throttles it
//! (`Unavailable`) or refuses the request (`Internal`), named for its operation; and a
//! read over shard partitions, whole.

use std::collections::{BTreeSet, HashMap};

use crate::domain::ids::ModelRef;
use crate::domain::shard::all_shards;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::query::{QueryError, QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::scan::{ScanError, ScanInput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use chrono::TimeDelta;

use super::request::{partition_query, query_shards};
use super::testing::{Seen, fast_retries, ids, query_rule, retention, scan_rule, take};
use super::{
    DynamoAlertStore, DynamoModelRegistry, DynamoModelSettings, DynamoPartialStore,
    DynamoRollupStore,
};
use crate::domain::{Granularity, TimeSpan};
use crate::error::{StoreError, StoreResult};
use crate::ports::{
    AlertStore, ExportCursors, ModelRegistry, ModelSettingsStore, PendingWork, RollupStore,
};
use crate::testing::at;

/// The adapters over one client, each on its own table.
struct Stores {
    alerts: DynamoAlertStore,
    partials: DynamoPartialStore,
    registry: DynamoModelRegistry,
    settings: DynamoModelSettings,
    rollups: DynamoRollupStore,
}

fn stores(rules: &[&Rule]) -> Stores {
    let client: Client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, fast_retries);
    Stores {
        alerts: DynamoAlertStore::new(client.clone(), "alerts"),
        partials: DynamoPartialStore::new(client.clone(), "partials", TimeDelta::days(8)),
        registry: DynamoModelRegistry::new(client.clone(), "models"),
        settings: DynamoModelSettings::new(client.clone(), "models"),
        rollups: DynamoRollupStore::new(client, "rollups", retention()),
    }
}

/// The operation each read names in its errors, in the order of [`read`].
const READS: [&str; 10] = [
    "read rule states",
    "read firing alerts",
    "read pending minutes",
    "read partials",
    "list models",
    "read active models",
    "read model settings",
    "read rollups",
    "list segment keys",
    "read export cursors",
];

/// Runs the `i`th read that goes through a paginated `Query` or `Scan` (see
/// [`READS`]), the value dropped.
async fn read(stores: &Stores, i: usize) -> StoreResult<()> {
    let (t, m) = ids();
    let minute = at("2026-11-28T10:15:00Z");
    match i {
        0 => stores
            .alerts
            .rule_states(ModelRef::new(&t, &m))
            .await
            .map(drop),
        1 => stores.alerts.firing_counts(&t).await.map(drop),
        2 => stores
            .partials
            .pending_minutes(all_shards())
            .await
            .map(drop),
        3 => stores
            .partials
            .partials_of(ModelRef::new(&t, &m), minute)
            .await
            .map(drop),
        4 => stores.registry.list_models(&t).await.map(drop),
        5 => stores
            .registry
            .active_models(minute, all_shards())
            .await
            .map(drop),
        6 => stores
            .settings
            .model_settings(ModelRef::new(&t, &m))
            .await
            .map(drop),
        7 => stores
            .rollups
            .rollups(
                ModelRef::new(&t, &m),
                Granularity::Minute,
                TimeSpan::new(minute, minute + TimeDelta::hours(1)),
            )
            .await
            .map(drop),
        8 => stores
            .registry
            .segments(ModelRef::new(&t, &m), minute)
            .await
            .map(drop),
        _ => stores
            .rollups
            .lagging_cursors("prometheus", all_shards())
            .await
            .map(drop),
    }
}

/// A strongly consistent query of the partition `pk` of `table`.
fn partition(
    table: &str,
    pk: &str,
) -> aws_sdk_dynamodb::operation::query::builders::QueryInputBuilder {
    QueryInput::builder()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
}

/// A strongly consistent query of the sort keys of `pk` that begin with `prefix`.
fn prefixed(table: &str, pk: &str, prefix: &str) -> QueryInput {
    partition(table, pk)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":prefix", AttributeValue::S(prefix.into()))
        .build()
        .expect("query")
}

#[tokio::test]
async fn every_read_sends_the_request_it_always_sent() {
    let (queries, scans): (Seen<QueryInput>, Seen<ScanInput>) = Default::default();
    let (query, scan) = (query_rule(&queries), scan_rule(&scans));
    let stores = stores(&[&query, &scan]);
    let minute = at("2026-11-28T10:15:00Z");
    let expected: Vec<Vec<QueryInput>> = vec![
        vec![partition("alerts", "STATE#t#m").build().expect("query")],
        vec![partition("alerts", "FIRING#t").build().expect("query")],
        (0..32)
            .map(|shard| {
                partition("partials", &format!("PENDING#{shard:02}"))
                    .build()
                    .expect("query")
            })
            .collect(),
        vec![
            partition("partials", &format!("P#t#m#{}", minute.timestamp()))
                .projection_expression("pk, sk, #state")
                .expression_attribute_names("#state", "state")
                .build()
                .expect("query"),
        ],
        vec![prefixed("models", "TENANT#t", "MODEL#")],
        (0..32)
            .map(|shard| {
                QueryInput::builder()
                    .table_name("models")
                    .index_name("active-models")
                    .key_condition_expression("active_shard = :shard AND last_seen >= :since")
                    .expression_attribute_values(
                        ":shard",
                        AttributeValue::S(format!("ACTIVE#{shard:02}")),
                    )
                    .expression_attribute_values(
                        ":since",
                        AttributeValue::N(minute.timestamp_millis().to_string()),
                    )
                    .build()
                    .expect("query")
            })
            .collect(),
        vec![prefixed("models", "TENANT#t", "SETTINGS#m#")],
        vec![
            QueryInput::builder()
                .table_name("rollups")
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", AttributeValue::S("MIN#t#m#1795824000".into()))
                .expression_attribute_values(":from", AttributeValue::S("1795860900".into()))
                .expression_attribute_values(":to", AttributeValue::S("1795864499".into()))
                .consistent_read(true)
                .build()
                .expect("query"),
        ],
        vec![
            prefixed("models", "TENANT#t", "SEGKEY#m#"),
            prefixed("models", "TENANT#t", "SEGVAL#m#"),
        ],
        (0..32)
            .map(|shard| {
                partition("rollups", &format!("EXPORT#prometheus#{shard:02}"))
                    .filter_expression(
                        "attribute_not_exists(through) OR through < rolled_through \
                         OR (attribute_exists(rolled_seq) AND attribute_not_exists(exported_seq)) \
                         OR exported_seq < rolled_seq",
                    )
                    .build()
                    .expect("query")
            })
            .collect(),
    ];
    let mut sent = Vec::new();
    // One read at a time, so each one's requests are told apart.
    for i in 0..READS.len() {
        let result = read(&stores, i).await;
        result.expect("an empty answer reads");
        let mut queries = take(&queries);
        // By the values, each map's entries in key order (a HashMap's own order varies).
        queries.sort_by_key(|q| {
            let values = q.expression_attribute_values().cloned().unwrap_or_default();
            let mut entries: Vec<String> = values.iter().map(|e| format!("{e:?}")).collect();
            entries.sort();
            entries
        });
        sent.push(queries);
    }
    assert_eq!(sent, expected);
    assert!(take(&scans).is_empty(), "no read scans a table");
}

/// The `Query` and `Scan` rules that fail every request with the service error `code`.
fn failing(code: &'static str) -> [Rule; 2] {
    let metadata = move || ErrorMetadata::builder().code(code).message(code).build();
    [
        mock!(Client::query).then_error(move || QueryError::generic(metadata())),
        mock!(Client::scan).then_error(move || ScanError::generic(metadata())),
    ]
}

#[tokio::test]
async fn a_throttled_read_is_unavailable_and_a_refused_one_internal() {
    let [query, scan] = failing("ThrottlingException");
    let throttled = stores(&[&query, &scan]);
    let [query, scan] = failing("ValidationException");
    let refused = stores(&[&query, &scan]);
    for (i, expected) in READS.into_iter().enumerate() {
        match read(&throttled, i).await {
            Err(StoreError::Unavailable { operation, .. }) => assert_eq!(operation, expected),
            other => panic!("{expected} throttled: {other:?}"),
        }
        match read(&refused, i).await {
            Err(StoreError::Internal { operation, .. }) => assert_eq!(operation, expected),
            other => panic!("{expected} refused: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_shard_read_gathers_every_page_of_every_shard() {
    // Shard n holds n items, served one per page; shard 0 holds none.
    let rule = mock!(Client::query).then_compute_output(|req| {
        let pk = match req.expression_attribute_values().and_then(|v| v.get(":pk")) {
            Some(AttributeValue::S(pk)) => pk.clone(),
            other => panic!("a partition query: {other:?}"),
        };
        let held: usize = pk.trim_start_matches("S#").parse().unwrap_or(0);
        let next = match req.exclusive_start_key().and_then(|k| k.get("sk")) {
            Some(AttributeValue::N(n)) => n.parse::<usize>().unwrap_or(0) + 1,
            _ => 0,
        };
        let mut output = QueryOutput::builder();
        if next < held {
            let item: HashMap<String, AttributeValue> = [
                ("pk".to_owned(), AttributeValue::S(pk)),
                ("sk".to_owned(), AttributeValue::N(next.to_string())),
            ]
            .into();
            output = output.items(item.clone());
            if next + 1 < held {
                output = output.set_last_evaluated_key(Some(item));
            }
        }
        output.build()
    });
    let client: Client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], fast_retries);
    let items = query_shards(
        0..12,
        |shard| partition_query(&client, "t", format!("S#{shard}")),
        "read shards",
    )
    .await
    .expect("every shard read");
    let got: BTreeSet<(String, String)> = items
        .iter()
        .map(|item| match (&item["pk"], &item["sk"]) {
            (AttributeValue::S(pk), AttributeValue::N(sk)) => (pk.clone(), sk.clone()),
            other => panic!("an item of the mock: {other:?}"),
        })
        .collect();
    let expected: BTreeSet<(String, String)> = (0..12)
        .flat_map(|shard| (0..shard).map(move |n| (format!("S#{shard}"), n.to_string())))
        .collect();
    assert_eq!(items.len(), expected.len(), "no item read twice");
    assert_eq!(got, expected);
}
