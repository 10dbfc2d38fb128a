//! The rollup store against mocked DynamoDB: the transaction of a minute rollup and
//! its exact totals, cursors and rollups sized like the memory store's, latency sums
//! as fixed-point milliseconds, legacy totals, and the partitions a window reads.

use crate::domain::ids::ModelRef;
use crate::error::StoreError;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

use super::super::testing::{
    Seen, cancelled, fast_retries, first_write, ids, number, put_rule, retention, seen,
    transact_rule, update_rule, updated,
};
use super::*;
use crate::adapters::memory::MemoryRollupStore;
use crate::domain::MAX_LATENCY_MS;
use crate::domain::UNTYPED_ERROR;
use crate::testing::{self, at};

fn store(rules: &[&Rule]) -> DynamoRollupStore {
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, fast_retries);
    DynamoRollupStore::new(client, "rollups", retention())
}

fn minute_rollup() -> Rollup {
    let (tenant, model_id) = ids();
    Rollup {
        tenant,
        model_id,
        granularity: Granularity::Minute,
        start: at("2026-11-28T10:15:00Z"),
        rev: 3,
        state: testing::regression_state(3, at("2026-11-28T10:15:00Z")),
    }
}

/// A delta of 9 predictions, 2 errors (one `timeout`, one untyped) and a latency
/// sum of 10^12 ms + 1 µs, recording `timeout` against 3 recorded types.
fn delta() -> CounterDelta {
    CounterDelta {
        add: CounterTotals {
            ok: 7,
            errors: 2,
            errors_by_type: [("timeout".to_owned(), 1), (UNTYPED_ERROR.to_owned(), 1)].into(),
            latency_sum_us: 1_000_000_000_000_001,
            named_error_types: ["timeout".to_owned()].into(),
        },
        named_error_types_read: 3,
    }
}

#[tokio::test]
async fn a_minute_rollup_adds_an_exact_delta_and_records_new_types_on_condition() {
    let requests = Seen::default();
    let rule = transact_rule(&requests);
    let rollup = minute_rollup();
    assert!(
        store(&[&rule])
            .put_minute_rollup(&rollup, Some(2), &delta())
            .await
            .expect("written")
    );
    let requests = seen(&requests);
    let items = requests[0].transact_items();
    assert_eq!(
        items.len(),
        2,
        "the rollup and its totals in one transaction"
    );
    let put = items[0].put().expect("rollup put");
    assert_eq!(put.condition_expression(), Some("rev = :previous"));
    assert_eq!(
        attr::item_size(put.item()),
        rollup_image(&rollup, rollup.start + TimeDelta::days(8)).checked_size(),
        "the memory store sizes the item the DynamoDB adapter writes"
    );

    let update = items[1].update().expect("totals update");
    assert_eq!(
        update.condition_expression(),
        Some("size(error_types) = :named_read")
    );
    assert_eq!(
        update
            .expression_attribute_values()
            .and_then(|v| v.get(":named_read")),
        Some(&AttributeValue::N("3".into()))
    );
    let expression = update.update_expression();
    assert!(
        expression.starts_with("SET ") && expression.contains(" ADD "),
        "{expression}"
    );
    let item = first_write(
        update.key(),
        expression,
        update.expression_attribute_names(),
        update.expression_attribute_values(),
    );
    assert_eq!(number(&item, "latency_total_ms"), "1000000000000.001");
    assert_eq!(number(&item, "ok"), "7");
    assert_eq!(number(&item, "e_timeout"), "1");
    assert_eq!(number(&item, "e_unknown"), "1");
    assert_eq!(
        item.get("error_types"),
        Some(&AttributeValue::Ss(vec!["timeout".into()]))
    );
    let (tenant, model_id) = ids();
    assert_eq!(
        attr::item_size(&item),
        totals_image(&tenant, &model_id, &delta().add).checked_size(),
        "the memory store sizes the totals the update makes"
    );
    assert_eq!(totals_from_item(&item).expect("read back"), delta().add);
}

#[tokio::test]
async fn the_first_recorded_type_needs_an_absent_record_and_known_types_no_condition() {
    let requests = Seen::default();
    let rule = transact_rule(&requests);
    let store = store(&[&rule]);
    let rollup = minute_rollup();
    let mut first = delta();
    first.named_error_types_read = 0;
    store
        .put_minute_rollup(&rollup, None, &first)
        .await
        .expect("written");
    let mut known = delta();
    known.add.named_error_types.clear();
    store
        .put_minute_rollup(&rollup, Some(3), &known)
        .await
        .expect("written");
    let requests = seen(&requests);
    let conditions: Vec<Option<&str>> = requests
        .iter()
        .map(|r| {
            r.transact_items()[1]
                .update()
                .and_then(|u| u.condition_expression())
        })
        .collect();
    assert_eq!(
        conditions,
        [Some("attribute_not_exists(error_types)"), None]
    );
    assert_eq!(
        requests[0].transact_items()[0]
            .put()
            .and_then(|p| p.condition_expression()),
        Some("attribute_not_exists(pk)")
    );
}

#[tokio::test]
async fn a_failed_condition_on_the_rollup_or_the_type_record_answers_false() {
    for reasons in [
        ["None", "ConditionalCheckFailed"],
        ["ConditionalCheckFailed", "None"],
    ] {
        let rule = mock!(Client::transact_write_items).then_error(move || cancelled(&reasons));
        let written = store(&[&rule])
            .put_minute_rollup(&minute_rollup(), Some(2), &delta())
            .await
            .expect("an answer, not an error");
        assert!(!written, "{reasons:?}");
    }
    let invalid =
        mock!(Client::transact_write_items).then_error(|| cancelled(&["ValidationError", "None"]));
    let err = store(&[&invalid])
        .put_minute_rollup(&minute_rollup(), Some(2), &delta())
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
}

#[tokio::test]
async fn hour_and_day_rollups_are_the_items_the_memory_store_sizes() {
    let requests = Seen::default();
    let rule = put_rule(&requests);
    let store = store(&[&rule]);
    let hour = Rollup {
        granularity: Granularity::Hour,
        start: at("2026-11-28T10:00:00Z"),
        ..minute_rollup()
    };
    let day = Rollup {
        granularity: Granularity::Day,
        start: at("2026-11-28T00:00:00Z"),
        ..minute_rollup()
    };
    for rollup in [&hour, &day] {
        assert!(store.put_rollup(rollup).await.expect("written"));
    }
    let requests = seen(&requests);
    for (request, (rollup, retention)) in requests
        .iter()
        .zip([(&hour, TimeDelta::days(35)), (&day, TimeDelta::days(400))])
    {
        assert_eq!(
            attr::item_size(request.item().expect("item")),
            rollup_image(rollup, rollup.start + retention).checked_size()
        );
    }
}

#[tokio::test]
async fn an_export_cursor_is_the_item_the_memory_store_sizes() {
    let requests = Seen::default();
    let rule = update_rule(&requests);
    let store = store(&[&rule]);
    let (tenant, model_id) = ids();
    let cursor = ExportCursor {
        tenant: tenant.clone(),
        model_id: model_id.clone(),
        through: Some(at("2026-11-28T10:15:00Z")),
        rolled_through: at("2026-11-28T10:16:00Z"),
        rolled_seq: 1,
        exported_seq: 1,
    };
    store
        .note_rolled(
            &["prometheus"],
            ModelRef::new(&tenant, &model_id),
            cursor.rolled_through,
        )
        .await
        .expect("noted");
    store
        .advance_cursor("prometheus", &cursor, at("2026-11-28T10:15:00Z"))
        .await
        .expect("advanced");
    assert_eq!(
        attr::item_size(&updated(&seen(&requests))),
        cursor_image("prometheus", &cursor).checked_size()
    );
}

#[test]
fn latency_sums_are_milliseconds_with_three_decimals() {
    assert_eq!(fixed_ms(0), "0.000");
    assert_eq!(fixed_ms(40_500), "40.500");
    assert_eq!(fixed_ms(1), "0.001");
    // The largest total: 2^64 predictions at the door's bound, in µs.
    let largest = u128::from(u64::MAX) * (MAX_LATENCY_MS as u128) * 1000;
    let text = fixed_ms(largest);
    assert!(
        crate::adapters::limits::number_size(&text).is_ok(),
        "{text} fits DynamoDB"
    );
    for us in [0, 1, 999, 1000, 40_500, largest] {
        assert_eq!(parse_micros(&fixed_ms(us)), Some(us));
    }
}

#[test]
fn any_decimal_of_milliseconds_reads_as_microseconds() {
    for (text, us) in [
        ("40", Some(40_000)),
        ("40.5", Some(40_500)),
        ("0.30000000000000004", Some(300)),
        ("1234.5678901234567890123456789", Some(1_234_568)),
        ("0.0004999", Some(0)),
        ("0.0005", Some(1)),
        ("1.5E+3", Some(1_500_000)),
        ("15e-4", Some(2)),
        ("1E-40", Some(0)),
        ("1e30", Some(10u128.pow(33))),
        ("-0", Some(0)),
        ("-1", None),
        ("1e40", None),
        ("", None),
        ("1.2.3", None),
        ("NaN", None),
        ("1e99999999", None),
    ] {
        assert_eq!(parse_micros(text), us, "{text:?}");
    }
}

#[test]
fn totals_written_before_the_fixed_point_and_the_cap_still_read() {
    let legacy = Item::from([
        ("pk".to_owned(), AttributeValue::S("TOTALS#t#m".into())),
        ("sk".to_owned(), AttributeValue::S("TOTALS".into())),
        ("ok".to_owned(), AttributeValue::N("10".into())),
        ("errors".to_owned(), AttributeValue::N("2".into())),
        (
            "latency_sum_ms".to_owned(),
            AttributeValue::N("1234.56789012345678901234567".into()),
        ),
        ("e_timeout".to_owned(), AttributeValue::N("2".into())),
    ]);
    let totals = totals_from_item(&legacy).expect("legacy totals");
    assert_eq!((totals.ok, totals.errors), (10, 2));
    assert_eq!(totals.latency_sum_us, 1_234_568);
    assert_eq!(totals.errors_by_type, [("timeout".to_owned(), 2)].into());
    assert!(totals.named_error_types.is_empty());

    let mut both = legacy.clone();
    both.insert(
        "latency_total_ms".to_owned(),
        AttributeValue::N("0.5".into()),
    );
    assert_eq!(
        totals_from_item(&both).expect("totals").latency_sum_us,
        1_235_068,
        "the frozen legacy sum and the fixed-point one add up"
    );
    let mut bad = legacy;
    bad.insert("latency_sum_ms".to_owned(), AttributeValue::N("-5".into()));
    let err = totals_from_item(&bad).expect_err("negative");
    assert!(err.to_string().contains("TOTALS#t#m"), "{err}");
}

#[tokio::test]
async fn the_memory_store_keeps_the_cap_condition_and_dynamodb_number_limits() {
    let store = MemoryRollupStore::default();
    let rollup = minute_rollup();
    let mut first = delta();
    first.named_error_types_read = 0;
    assert!(
        store
            .put_minute_rollup(&rollup, None, &first)
            .await
            .expect("first")
    );
    let mut stale = delta();
    stale.named_error_types_read = 0;
    stale.add.named_error_types = ["disk".to_owned()].into();
    assert!(
        !store
            .put_minute_rollup(&rollup, Some(3), &stale)
            .await
            .expect("an answer"),
        "the record moved since the delta was mapped"
    );
    let (tenant, model_id) = ids();
    let totals = store
        .counter_totals(ModelRef::new(&tenant, &model_id))
        .await
        .expect("totals");
    assert_eq!(totals.named_error_types, ["timeout".to_owned()].into());
    assert_eq!(totals.latency_sum_us, 1_000_000_000_000_001);

    // A sum DynamoDB cannot hold (more than 38 digits) is refused, nothing stored.
    let mut huge = CounterDelta::default();
    huge.add.latency_sum_us = u128::MAX / 2;
    let mut next = rollup.clone();
    next.rev = 4;
    let err = store
        .put_minute_rollup(&next, Some(3), &huge)
        .await
        .expect_err("refused like a ValidationException");
    assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
    assert_eq!(
        store
            .counter_totals(ModelRef::new(&tenant, &model_id))
            .await
            .expect("totals"),
        totals,
        "nothing changed"
    );
}

#[test]
fn a_window_reads_few_partitions() {
    let (t, m) = ids();
    let day = partitions(
        ModelRef::new(&t, &m),
        Granularity::Minute,
        TimeSpan::new(at("2026-11-27T10:00:00Z"), at("2026-11-28T10:00:00Z")),
    );
    assert_eq!(day, ["MIN#t#m#1795737600", "MIN#t#m#1795824000"]);
    let month = partitions(
        ModelRef::new(&t, &m),
        Granularity::Hour,
        TimeSpan::new(at("2026-10-29T11:00:00Z"), at("2026-11-28T11:00:00Z")),
    );
    assert_eq!(month, ["HOUR#t#m#2026-10", "HOUR#t#m#2026-11"]);
    let long = partitions(
        ModelRef::new(&t, &m),
        Granularity::Hour,
        TimeSpan::new(at("2026-01-31T00:00:00Z"), at("2026-04-01T00:00:00Z")),
    );
    assert_eq!(
        long,
        ["HOUR#t#m#2026-01", "HOUR#t#m#2026-02", "HOUR#t#m#2026-03"]
    );
    assert_eq!(
        partitions(
            ModelRef::new(&t, &m),
            Granularity::Day,
            TimeSpan::new(at("2025-11-01T00:00:00Z"), at("2026-11-28T00:00:00Z"))
        ),
        ["DAY#t#m"]
    );
}

#[test]
fn sort_keys_order_like_time() {
    assert_eq!(sort_key(at("1970-01-01T00:01:40Z")), "0000000100");
    assert!(sort_key(at("2001-09-09T01:46:39Z")) < sort_key(at("2001-09-09T01:46:40Z")));
}
