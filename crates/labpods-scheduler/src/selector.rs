//! Kubernetes label-selector semantics (matchLabels AND every matchExpression).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operator {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
}

/// An empty selector matches every host, as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| values.contains(v)),
            // As in Kubernetes, NotIn also matches hosts without the label.
            Operator::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }

    /// Short human form for messages, e.g. `arch in (x86_64)`.
    fn describe(&self) -> String {
        match &self.operator {
            Operator::In(v) => format!("{} in ({})", self.key, v.join(",")),
            Operator::NotIn(v) => format!("{} notin ({})", self.key, v.join(",")),
            Operator::Exists => self.key.clone(),
            Operator::DoesNotExist => format!("!{}", self.key),
        }
    }
}

impl Selector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// `kubectl`-like rendering: `rack=r1,arch in (x86_64)`.
    pub fn describe(&self) -> String {
        self.match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(self.match_expressions.iter().map(Requirement::describe))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, operator: Operator) -> Selector {
        Selector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: key.to_owned(),
                operator,
            }],
        }
    }

    #[test]
    fn selector_semantics_follow_kubernetes() {
        let host = labels(&[("rack", "r1"), ("arch", "x86_64")]);
        let bare = labels(&[]);
        let in_r1 = || Operator::In(vec!["r1".into(), "r2".into()]);
        let cases: Vec<(Selector, &BTreeMap<String, String>, bool)> = vec![
            (Selector::default(), &host, true),
            (
                Selector {
                    match_labels: labels(&[("rack", "r1")]),
                    ..Default::default()
                },
                &host,
                true,
            ),
            (
                Selector {
                    match_labels: labels(&[("rack", "r2")]),
                    ..Default::default()
                },
                &host,
                false,
            ),
            (expr("rack", in_r1()), &host, true),
            (expr("rack", in_r1()), &bare, false),
            (
                expr("rack", Operator::NotIn(vec!["r1".into()])),
                &host,
                false,
            ),
            (
                expr("rack", Operator::NotIn(vec!["r1".into()])),
                &bare,
                true,
            ),
            (expr("gpu", Operator::Exists), &host, false),
            (expr("arch", Operator::Exists), &host, true),
            (expr("gpu", Operator::DoesNotExist), &host, true),
            (expr("arch", Operator::DoesNotExist), &host, false),
        ];
        for (i, (selector, labels, want)) in cases.iter().enumerate() {
            assert_eq!(
                selector.matches(labels),
                *want,
                "case {i}: {}",
                selector.describe()
            );
        }
    }

    #[test]
    fn describe_reads_like_kubectl() {
        let mut s = expr("arch", Operator::In(vec!["x86_64".into()]));
        s.match_labels = labels(&[("rack", "r1")]);
        assert_eq!(s.describe(), "rack=r1,arch in (x86_64)");
    }
}
