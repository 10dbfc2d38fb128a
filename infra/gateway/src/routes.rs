//! The route table: every `HttpApi` event of the template's functions, matched as API
//! Gateway matches them — the most specific route wins, `{name}` matches one path
//! segment, `{name+}` the rest of the path, and `ANY` every method.

use std::collections::BTreeMap;

/// One route of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `PUT`, …, or `ANY`.
    pub method: String,
    /// The path template, e.g. `/api/v1/monitoring/performance/{model_id}`.
    pub path: String,
    /// The function it invokes (the logical id without `Function`, lower-cased: the
    /// name the local Lambda emulator serves it under).
    pub function: String,
}

impl Route {
    /// The API Gateway route key, e.g. `GET /api/v1/monitoring/models`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Why the template's routes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Not YAML.
    #[error("the template is not YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// No function has an HttpApi event.
    #[error("the template routes nothing (no HttpApi event)")]
    Empty,
}

/// Every route of `template` (a SAM template's text).
pub fn template_routes(template: &str) -> Result<Vec<Route>, RouteError> {
    let template: serde_norway::Value = serde_norway::from_str(template)?;
    let mut routes = Vec::new();
    let Some(resources) = template["Resources"].as_mapping() else {
        return Err(RouteError::Empty);
    };
    for (logical_id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        let function = logical_id
            .as_str()
            .unwrap_or_default()
            .trim_end_matches("Function")
            .to_lowercase();
        for event in events.values() {
            let properties = &event["Properties"];
            let (Some("HttpApi"), Some(method), Some(path)) = (
                event["Type"].as_str(),
                properties["Method"].as_str(),
                properties["Path"].as_str(),
            ) else {
                continue;
            };
            routes.push(Route {
                method: method.to_uppercase(),
                path: path.to_owned(),
                function: function.clone(),
            });
        }
    }
    if routes.is_empty() {
        return Err(RouteError::Empty);
    }
    Ok(routes)
}

/// A matched route with the path's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'a Route,
    /// `{name}` → the segment, `{name+}` → the rest (`proxy` for `{proxy+}`).
    pub parameters: BTreeMap<String, String>,
}

/// How specific a match is: literal segments first, then parameters, then a greedy
/// one; a method before `ANY`.
fn specificity(route: &Route) -> (usize, usize, bool, bool) {
    let segments: Vec<&str> = route.path.split('/').filter(|s| !s.is_empty()).collect();
    let literal = segments.iter().filter(|s| !s.starts_with('{')).count();
    let greedy = segments.iter().any(|s| s.ends_with("+}"));
    (literal, segments.len(), !greedy, route.method != "ANY")
}

/// The route `method path` takes, if any.
pub fn route_of<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<Matched<'a>> {
    routes
        .iter()
        .filter(|r| r.method == "ANY" || r.method == method)
        .filter_map(|route| {
            parameters(&route.path, path).map(|parameters| Matched { route, parameters })
        })
        .max_by_key(|m| specificity(m.route))
}

/// The parameters of `path` under `template`, when it matches.
fn parameters(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let wanted: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let given: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut parameters = BTreeMap::new();
    for (i, segment) in wanted.iter().enumerate() {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            let rest = given.get(i..).filter(|rest| !rest.is_empty())?;
            parameters.insert(name.to_owned(), rest.join("/"));
            return Some(parameters);
        }
        let part = given.get(i)?;
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                parameters.insert(name.to_owned(), (*part).to_owned());
            }
            None if segment == part => {}
            None => return None,
        }
    }
    (wanted.len() == given.len()).then_some(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<Route> {
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
                .expect("template.yaml");
        template_routes(&template).expect("routes")
    }

    #[test]
    fn the_templates_routes_reach_their_functions_the_most_specific_first() {
        let routes = routes();
        let hit = |method: &str, path: &str| {
            route_of(&routes, method, path)
                .map(|m| (m.route.function.clone(), m.route.key(), m.parameters))
        };
        let (function, key, _) = hit("POST", "/api/v1/monitoring/predictions").expect("ingest");
        assert_eq!(
            (function.as_str(), key.as_str()),
            ("ingest", "POST /api/v1/monitoring/predictions")
        );
        let (function, key, parameters) =
            hit("GET", "/api/v1/monitoring/performance/fraud-v1/alert-rules").expect("api");
        assert_eq!(function, "api");
        assert_eq!(
            key,
            "GET /api/v1/monitoring/performance/{model_id}/alert-rules"
        );
        assert_eq!(parameters["model_id"], "fraud-v1");
        // A method the route does not name falls to the catch-all, as in API Gateway.
        let (function, key, parameters) =
            hit("DELETE", "/api/v1/monitoring/performance/fraud-v1").expect("catch-all");
        assert_eq!(function, "api");
        assert_eq!(key, "ANY /api/v1/monitoring/{proxy+}");
        assert_eq!(parameters["proxy"], "performance/fraud-v1");
        assert_eq!(hit("GET", "/elsewhere"), None);
        assert_eq!(
            hit("GET", "/api/v1/monitoring"),
            None,
            "{{proxy+}} needs a segment"
        );
    }
}
