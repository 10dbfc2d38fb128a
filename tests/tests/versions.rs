//! End to end: a canary through the real binaries. Two versions of a binary model —
//! `v1` most of the traffic, `v2` less accurate and failing more, part of its labels
//! late —, `aggregate` on its scheduled event, then `api`: the compare route's values,
//! p-values and intervals equal scikit-learn's and scipy's on the same records, its
//! verdict is `candidate_worse`, a version's summary equals the reference on its
//! subset, the versions route counts each, Prometheus holds per-version counters
//! (`ml_model_version_…`) and the exported segment key's (`ml_model_segment_…`), and
//! another tenant gets 404 everywhere. Every prediction carries a segment (`region` `eu` or `us`): a region's
//! summary and the compare route over two regions equal the references on their
//! subsets, across both versions, late labels included; the segments route lists both
//! regions with their counts.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use modelwatch_e2e::{
    Stack, actuals_event, api_request, event, ingest_event, python_reference, unique_tenant,
};
use serde_json::{Value, json};

const MODEL: &str = "m-canary";

/// One version's traffic: `n` predictions, the first `errors` failed, of the rest
/// every one right except each `wrong_every`-th; the last `late` ok ones come without
/// their actual (a label batch sends it).
struct Traffic {
    version: &'static str,
    n: usize,
    errors: usize,
    wrong_every: usize,
    late: usize,
}

impl Traffic {
    fn time(&self, i: usize, now: DateTime<Utc>) -> DateTime<Utc> {
        let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("minute");
        minute - TimeDelta::minutes(2 + (i % 40) as i64) + TimeDelta::milliseconds(i as i64 * 7)
    }

    fn id(&self, i: usize) -> String {
        format!("{}-{i}", self.version)
    }

    /// (predicted, actual) of ok prediction `i`.
    fn outcome(&self, i: usize) -> (bool, bool) {
        let predicted = i.is_multiple_of(2);
        let right = !i.is_multiple_of(self.wrong_every);
        (predicted, if right { predicted } else { !predicted })
    }

    /// The region of prediction `i`: a third of each version's traffic is in `eu`.
    fn region(i: usize) -> &'static str {
        if i.is_multiple_of(3) { "eu" } else { "us" }
    }

    fn is_late(&self, i: usize) -> bool {
        i >= self.n - self.late
    }

    fn batch(&self, now: DateTime<Utc>) -> Vec<u8> {
        let predictions: Vec<Value> = (0..self.n)
            .map(|i| {
                let t = self.time(i, now).to_rfc3339();
                let segment = json!({"region": Self::region(i)});
                if i < self.errors {
                    return json!({"prediction_id": self.id(i), "timestamp": t,
                                  "latency_ms": 900, "status": "error", "error_type": "timeout",
                                  "segment": segment});
                }
                let (predicted, actual) = self.outcome(i);
                let mut p = json!({"prediction_id": self.id(i), "timestamp": t,
                                   "latency_ms": 5 + i % 13, "status": "ok",
                                   "predicted": predicted, "score": 0.625, "segment": segment});
                if !self.is_late(i) {
                    p["actual"] = actual.into();
                }
                p
            })
            .collect();
        json!({"model_id": MODEL, "batch_id": format!("b-{}", self.version),
               "model_version": self.version, "task": "binary_classification",
               "predictions": predictions})
        .to_string()
        .into_bytes()
    }

    fn labels(&self, now: DateTime<Utc>) -> Vec<u8> {
        let actuals: Vec<Value> = (self.n - self.late..self.n)
            .map(|i| {
                json!({"prediction_id": self.id(i), "actual": self.outcome(i).1,
                            "timestamp": now.to_rfc3339()})
            })
            .collect();
        json!({"model_id": MODEL, "batch_id": format!("l-{}", self.version), "actuals": actuals})
            .to_string()
            .into_bytes()
    }

    /// The side as the reference script reads it.
    fn reference_side(&self) -> Value {
        reference_side(&[self], |_| true)
    }
}

/// The predictions of `traffics` in `keep` (by index) as one reference side.
fn reference_side(traffics: &[&Traffic], keep: impl Fn(usize) -> bool) -> Value {
    let (mut labeled, mut predictions, mut errors) = (Vec::new(), 0, 0);
    for traffic in traffics {
        for i in (0..traffic.n).filter(|i| keep(*i)) {
            predictions += 1;
            if i < traffic.errors {
                errors += 1;
            } else {
                labeled.push(traffic.outcome(i));
            }
        }
    }
    json!({"predicted": labeled.iter().map(|l| l.0).collect::<Vec<_>>(),
           "actual": labeled.iter().map(|l| l.1).collect::<Vec<_>>(),
           "predictions": predictions, "errors": errors})
}

async fn get(stack: &Stack, tenant: &str, resource: &str, query: &[(&str, &str)]) -> (u64, Value) {
    let path = match resource {
        "" => format!("/api/v1/monitoring/performance/{MODEL}"),
        _ => format!("/api/v1/monitoring/performance/{MODEL}/{resource}"),
    };
    let answer = stack
        .invoke("api", &api_request(Some(tenant), "GET", &path, query))
        .await;
    let status = answer["statusCode"].as_u64().expect("status");
    let body = serde_json::from_str(answer["body"].as_str().expect("body")).expect("JSON");
    (status, body)
}

fn close(shown: &Value, expected: &Value, what: &str) {
    let (a, b) = (shown.as_f64(), expected.as_f64());
    let (Some(a), Some(b)) = (a, b) else {
        panic!("{what}: {shown} vs {expected}");
    };
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1e-3),
        "{what}: {a} vs reference {b}"
    );
}

#[tokio::test]
async fn a_worse_canary_is_found_with_the_references_statistics() {
    let stack = Stack::get();
    let tenant = unique_tenant("versions");
    let now = Utc::now();
    let stable = Traffic {
        version: "v1",
        n: 900,
        errors: 9,
        wrong_every: 20,
        late: 0,
    };
    let canary = Traffic {
        version: "v2",
        n: 100,
        errors: 6,
        wrong_every: 4,
        late: 30,
    };
    for traffic in [&stable, &canary] {
        let answer = stack
            .invoke("ingest", &ingest_event(&tenant, &traffic.batch(now)))
            .await;
        assert_eq!(answer["statusCode"], 202, "{answer}");
    }
    let answer = stack
        .invoke("ingest", &actuals_event(&tenant, &canary.labels(now)))
        .await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let mut trigger = event("aggregate-scheduled.json");
    trigger["time"] = now.to_rfc3339().into();
    let report = stack.invoke("aggregate", &trigger).await;
    assert!(report["rollups"].is_object(), "{report}");

    let want = python_reference(
        "tests/reference/version_comparison.py",
        &json!({"baseline": stable.reference_side(), "candidate": canary.reference_side()}),
    );
    let query = [
        ("baseline", "version:v1"),
        ("candidate", "version:v2"),
        ("window", "1h"),
    ];
    let (status, compared) = get(stack, &tenant, "compare", &query).await;
    assert_eq!(status, 200, "{compared}");
    assert_eq!(compared["verdict"], "candidate_worse", "{compared}");
    assert_eq!(compared["baseline"]["sample_count"], 900);
    assert_eq!(compared["candidate"]["sample_count"], 100);
    assert_eq!(
        compared["candidate"]["labeled_count"], 94,
        "late labels count in v2"
    );
    let metric = |name: &str| -> &Value {
        compared["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap_or_else(|| panic!("no {name} in {compared}"))
    };
    for name in ["accuracy", "error_rate"] {
        let shown = metric(name);
        close(
            &shown["baseline"],
            &want["baseline"][name],
            &format!("{name} of v1"),
        );
        close(
            &shown["candidate"],
            &want["candidate"][name],
            &format!("{name} of v2"),
        );
        let test = &shown["test"];
        close(
            &test["p_value"],
            &want[name]["p_value"],
            &format!("p-value of {name}"),
        );
        close(&test["z"], &want[name]["z"], &format!("z of {name}"));
        close(
            &test["ci"][0],
            &want[name]["ci"][0],
            &format!("ci of {name}"),
        );
        close(
            &test["ci"][1],
            &want[name]["ci"][1],
            &format!("ci of {name}"),
        );
    }
    assert_eq!(
        metric("accuracy")["test"]["significant"],
        true,
        "{compared}"
    );
    let p95 = metric("latency_p95");
    assert!(p95["bound"].as_f64() > Some(0.0), "{p95}");

    let (status, summary) = get(stack, &tenant, "", &[("version", "v2"), ("window", "1h")]).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["model_version"], "v2");
    assert_eq!(summary["sample_count"], 100);
    close(
        &summary["quality_metrics"]["accuracy"]["current"],
        &want["candidate"]["accuracy"],
        "accuracy of the v2 summary",
    );
    let (_, whole) = get(stack, &tenant, "", &[("window", "1h")]).await;
    assert_eq!(whole["sample_count"], 1000, "{whole}");

    let (status, versions) = get(stack, &tenant, "versions", &[]).await;
    assert_eq!(status, 200, "{versions}");
    let listed: Vec<(&str, u64, u64)> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| {
            Some((
                v["model_version"].as_str()?,
                v["prediction_count"].as_u64()?,
                v["error_count"].as_u64()?,
            ))
        })
        .collect();
    assert_eq!(listed, [("v1", 900, 9), ("v2", 100, 6)], "{versions}");
    assert_eq!(versions["overflow_prediction_count"], 0);

    let other = unique_tenant("versions-other");
    for (resource, query) in [
        ("versions", &[][..]),
        ("compare", &query[..]),
        ("", &[("version", "v2")][..]),
    ] {
        let (status, body) = get(stack, &other, resource, query).await;
        assert_eq!(status, 404, "{resource}: {body}");
    }

    // The regions across both versions: a region's summary and the comparison of the
    // two equal the references on their subsets.
    let region = |name: &'static str| {
        reference_side(&[&stable, &canary], move |i| Traffic::region(i) == name)
    };
    let want = python_reference(
        "tests/reference/version_comparison.py",
        &json!({"baseline": region("us"), "candidate": region("eu")}),
    );
    let (status, eu) = get(
        stack,
        &tenant,
        "",
        &[("segment", "region:eu"), ("window", "1h")],
    )
    .await;
    assert_eq!(status, 200, "{eu}");
    assert_eq!(eu["segment"], json!({"key": "region", "value": "eu"}));
    assert_eq!(eu["sample_count"], want["candidate"]["predictions"], "{eu}");
    close(
        &eu["quality_metrics"]["accuracy"]["current"],
        &want["candidate"]["accuracy"],
        "accuracy of region eu",
    );
    close(
        &eu["serving_metrics"]["error_rate"],
        &want["candidate"]["error_rate"],
        "error rate of region eu",
    );
    let query = [
        ("baseline", "segment:region:us"),
        ("candidate", "segment:region:eu"),
        ("window", "1h"),
    ];
    let (status, regions) = get(stack, &tenant, "compare", &query).await;
    assert_eq!(status, 200, "{regions}");
    let accuracy = regions["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["metric"] == "accuracy")
        .expect("accuracy");
    close(
        &accuracy["test"]["p_value"],
        &want["accuracy"]["p_value"],
        "p-value of regions",
    );
    close(
        &accuracy["test"]["z"],
        &want["accuracy"]["z"],
        "z of regions",
    );
    for (resource, query) in [("", &[("segment", "region:eu")][..]), ("segments", &[][..])] {
        let (status, body) = get(stack, &other, resource, query).await;
        assert_eq!(status, 404, "{resource}: {body}");
    }

    // The segments route: the kept key, both regions and what was counted in each.
    let in_region = |name: &str, range: fn(&Traffic) -> std::ops::Range<usize>| {
        [&stable, &canary]
            .iter()
            .map(|t| range(t).filter(|i| Traffic::region(*i) == name).count() as u64)
            .sum::<u64>()
    };
    let region_counts = |name: &str| {
        (
            in_region(name, |t| 0..t.n),
            in_region(name, |t| 0..t.errors),
        )
    };
    let (status, segments) = get(stack, &tenant, "segments", &[]).await;
    assert_eq!(status, 200, "{segments}");
    let listed: Vec<(&str, &str, u64, u64)> = segments["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .flat_map(|k| {
            let key = k["key"].as_str().unwrap_or("?");
            let values = k["values"].as_array().into_iter().flatten();
            values.filter_map(move |v| {
                Some((
                    key,
                    v["value"].as_str()?,
                    v["prediction_count"].as_u64()?,
                    v["error_count"].as_u64()?,
                ))
            })
        })
        .collect();
    let ((eu, eu_errors), (us, us_errors)) = (region_counts("eu"), region_counts("us"));
    assert_eq!(
        listed,
        [
            ("region", "eu", eu, eu_errors),
            ("region", "us", us, us_errors)
        ],
        "{segments}"
    );
    assert_eq!(segments["keys"][0]["overflow_prediction_count"], 0);
    assert_eq!(segments["overflow_prediction_count"], 0);

    // The version's counters reach Prometheus beside the model's, and so do the
    // region's (the local stack exports key `region`: EXPORTED_SEGMENT_KEYS), each
    // under its own names: the model's series holds the model's count alone.
    let ok_in_eu = [&stable, &canary]
        .iter()
        .map(|t| {
            (t.errors..t.n)
                .filter(|i| Traffic::region(*i) == "eu")
                .count()
        })
        .sum::<usize>();
    let counter = |name: &str, labels: &str| {
        format!(
            "last_over_time({name}{{tenant_id=\"{tenant}\",model_id=\"{MODEL}\",status=\"ok\"{labels}}}[2h])"
        )
    };
    let cases = [
        (
            counter(
                "ml_model_version_predictions_total",
                ",model_version=\"v2\"",
            ),
            94.0,
            "ok predictions of v2",
        ),
        (
            counter(
                "ml_model_segment_predictions_total",
                ",segment_key=\"region\",segment_value=\"eu\"",
            ),
            ok_in_eu as f64,
            "ok predictions of region eu",
        ),
        (
            counter("ml_model_predictions_total", ""),
            985.0,
            "one series of the model, its own count",
        ),
    ];
    for (query, want, what) in cases {
        assert_eq!(exported(stack, &query, now).await, [want], "{what}");
    }
}

/// The values of the Prometheus `query` now: what a run exported (stamped with its
/// clock, however long the test took to get here). A run that reached its deadline
/// leaves its exports to the next (the suite's other models share the shards), so up
/// to five more runs are invoked until the query answers.
async fn exported(stack: &Stack, query: &str, now: DateTime<Utc>) -> Vec<f64> {
    for run in 0..=5 {
        let values: Vec<f64> = stack
            .prometheus_query(query, Utc::now().timestamp() + 1)
            .await
            .iter()
            .map(|(_, v)| *v)
            .collect();
        if !values.is_empty() || run == 5 {
            return values;
        }
        let mut trigger = event("aggregate-scheduled.json");
        trigger["time"] = now.to_rfc3339().into();
        stack.invoke("aggregate", &trigger).await;
    }
    Vec::new()
}
