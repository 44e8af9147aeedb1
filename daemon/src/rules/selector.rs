//! Kubernetes label selectors in their string form
//! (`app=web,tier!=db,env in (prod,staging),!canary,team`), parsed once at
//! load time so a typo is a load error, not a rule that never matches.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; every requirement must hold (AND).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse the string form used by `kubectl -l`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("empty requirement in selector {text:?}"));
            }
            requirements.push(parse_requirement(part)?);
        }
        if requirements.is_empty() {
            return Err("empty selector".into());
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// Split on commas that are not inside `( … )`.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced ')' in selector {text:?}"));
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '(' in selector {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement::DoesNotExist(key.into()));
    }
    if let Some((k, v)) = part.split_once("!=") {
        let (k, v) = (k.trim(), v.trim());
        check_key(k)?;
        check_value(v)?;
        return Ok(Requirement::NotEquals(k.into(), v.into()));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        let (k, v) = (k.trim(), v.trim());
        check_key(k)?;
        check_value(v)?;
        return Ok(Requirement::Equals(k.into(), v.into()));
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0].trim();
        let rest = words[1].trim();
        let (negate, list) = if let Some(l) = rest.strip_prefix("notin") {
            (true, l)
        } else if let Some(l) = rest.strip_prefix("in") {
            (false, l)
        } else {
            return Err(format!("expected `in` or `notin` after {key:?} in {part:?}"));
        };
        let list = list.trim();
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| format!("expected a parenthesised value list in {part:?}"))?;
        check_key(key)?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
        for v in &values {
            if v.is_empty() {
                return Err(format!("empty value in {part:?}"));
            }
            check_value(v)?;
        }
        return Ok(if negate { Requirement::NotIn(key.into(), values) } else { Requirement::In(key.into(), values) });
    }
    check_key(part)?;
    Ok(Requirement::Exists(part.into()))
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || prefix.len() > 253
                || !prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            {
                return Err(format!("invalid label key prefix {prefix:?}"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 || !is_label_token(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.len() > 63 || (!value.is_empty() && !is_label_token(value)) {
        return Err(format!("invalid label value {value:?}"));
    }
    Ok(())
}

/// Alphanumerics with `-`, `_`, `.` inside.
fn is_label_token(s: &str) -> bool {
    let ok_edge = |c: char| c.is_ascii_alphanumeric();
    s.chars().next().is_some_and(ok_edge)
        && s.chars().last().is_some_and(ok_edge)
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn all_operators() {
        let s = LabelSelector::parse("app=web, tier!=db,env in (prod, staging),!canary,team,x notin (a)").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "t")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "t")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "t"), ("canary", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "t"), ("x", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(
            LabelSelector::parse("app.kubernetes.io/name==shop")
                .unwrap()
                .matches(&labels(&[("app.kubernetes.io/name", "shop")]))
        );
    }

    #[test]
    fn bad_selectors_are_refused() {
        for bad in ["", "app=", "a b c", "env in prod", "env in (a,)", "=x", "app=we b", "(a", "a)", "-a=b", "a,,b"] {
            let result = LabelSelector::parse(bad);
            // `app=` (empty value) is valid in Kubernetes.
            if bad == "app=" {
                assert!(result.is_ok());
            } else {
                assert!(result.is_err(), "{bad:?} should be refused");
            }
        }
    }
}
