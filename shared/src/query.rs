//! Query parameters of the HTTP routes: each route names the parameters it takes,
//! each at most once, and refuses any other, so a misspelt parameter is an error
//! instead of a silently ignored one.

use serde::Serialize;

/// A query parameter a route refuses (400).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("invalid query parameter `{parameter}`: {reason}")]
pub struct InvalidParameter {
    /// The parameter's name.
    pub parameter: String,
    /// The value given, if one was.
    pub value: Option<String>,
    /// Why it is refused.
    pub reason: String,
    /// The values (or, for an unknown parameter, the names) allowed.
    pub allowed: Vec<&'static str>,
}

impl InvalidParameter {
    /// `parameter` given as `value` is refused for `reason`; `allowed` lists the
    /// values it may take.
    pub fn value(
        parameter: &str,
        value: &str,
        reason: impl Into<String>,
        allowed: Vec<&'static str>,
    ) -> Self {
        Self {
            parameter: parameter.to_owned(),
            value: Some(value.to_owned()),
            reason: reason.into(),
            allowed,
        }
    }
}

/// The values of the parameters `names` (in that order, `None` when absent) from
/// `params`. A parameter given more than once, or one not in `names`, is refused; of
/// several unknown ones the first in name order is named, so the answer is stable.
pub fn single_values<'a, const N: usize>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    names: [&'static str; N],
) -> Result<[Option<&'a str>; N], InvalidParameter> {
    let mut values = [None; N];
    let mut unknown = Vec::new();
    for (name, value) in params {
        let Some(slot) = names.iter().position(|n| *n == name) else {
            unknown.push(name);
            continue;
        };
        if values[slot].is_some() {
            return Err(InvalidParameter::value(
                name,
                value,
                "is given more than once",
                Vec::new(),
            ));
        }
        values[slot] = Some(value);
    }
    unknown.sort_unstable();
    match unknown.first() {
        Some(name) => Err(InvalidParameter {
            parameter: (*name).to_owned(),
            value: None,
            reason: "is not a parameter of this route".into(),
            allowed: names.to_vec(),
        }),
        None => Ok(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_parameters_are_read_in_name_order() {
        let values = single_values([("b", "2"), ("a", "1")], ["a", "b", "c"]).expect("valid");
        assert_eq!(values, [Some("1"), Some("2"), None]);
        assert_eq!(
            single_values([], []).expect("none"),
            [] as [Option<&str>; 0]
        );
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let err = single_values([("z", "1"), ("y", "2"), ("a", "1")], ["a"]).expect_err("unknown");
        assert_eq!(err.parameter, "y", "the first unknown name in order");
        assert_eq!(err.allowed, ["a"]);
        assert_eq!(err.value, None);
        let err = single_values([("a", "1"), ("a", "2")], ["a"]).expect_err("twice");
        assert_eq!(err.parameter, "a");
        assert_eq!(err.value.as_deref(), Some("2"));
        let err = single_values([("limit", "5")], []).expect_err("takes none");
        assert_eq!(
            err.to_string(),
            "invalid query parameter `limit`: is not a parameter of this route"
        );
        assert!(err.allowed.is_empty());
    }
}
