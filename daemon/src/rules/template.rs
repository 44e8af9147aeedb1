//! `{{ variable }}` templates for workflow arguments, filled in from the
//! signal. Parsed at load time so an unknown variable is a rule error.

use crate::model::signal::Signal;

/// Variables a template may use; `labels.KEY` reads one label.
pub const VARIABLES: &[&str] =
    &["cluster", "namespace", "kind", "name", "object_kind", "object_name", "reason", "severity", "message", "source"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("unclosed `{{{{` in template {text:?}"))?;
            let var = after[..end].trim();
            let known = VARIABLES.contains(&var)
                || var.strip_prefix("labels.").is_some_and(|k| !k.is_empty() && !k.contains(char::is_whitespace));
            if !known {
                return Err(format!("unknown template variable {var:?} (known: {}, labels.KEY)", VARIABLES.join(", ")));
            }
            pieces.push(Piece::Var(var.to_owned()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("stray `}}}}` in template {text:?}"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self { pieces })
    }

    /// Fill in from a signal; a missing label or severity renders as empty.
    pub fn render(&self, signal: &Signal) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&lookup(signal, v)),
            }
        }
        out
    }
}

fn lookup(signal: &Signal, var: &str) -> String {
    let subject = signal.subject();
    match var {
        "cluster" => signal.cluster.clone(),
        "namespace" => subject.namespace.clone(),
        "kind" => subject.kind.clone(),
        "name" => subject.name.clone(),
        "object_kind" => signal.object.kind.clone(),
        "object_name" => signal.object.name.clone(),
        "reason" => signal.reason.clone(),
        "severity" => signal.severity.clone().unwrap_or_default(),
        "message" => signal.message.clone(),
        "source" => {
            serde_json::to_value(signal.source).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        }
        _ => var.strip_prefix("labels.").and_then(|k| signal.labels.get(k).cloned()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::{SignalSource, SignalStatus, WorkloadRef};

    #[test]
    fn renders_signal_fields() {
        let signal = Signal {
            source: SignalSource::Alertmanager,
            status: SignalStatus::Firing,
            reason: "KubePodCrashLooping".into(),
            cluster: "prod".into(),
            object: WorkloadRef::new("Pod", "shop", "cart-1"),
            workload: Some(WorkloadRef::new("Deployment", "shop", "cart")),
            labels: [("alertname".to_owned(), "KubePodCrashLooping".to_owned())].into(),
            severity: None,
            message: "m".into(),
            observed_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let t = Template::parse(
            "{{kind}}/{{ namespace }}/{{name}} {{labels.alertname}} {{object_name}} {{source}}[{{severity}}]",
        )
        .unwrap();
        assert_eq!(t.render(&signal), "Deployment/shop/cart KubePodCrashLooping cart-1 alertmanager[]");
        assert!(Template::parse("{{nope}}").unwrap_err().contains("unknown template variable"));
        assert!(Template::parse("{{name").unwrap_err().contains("unclosed"));
        assert!(Template::parse("name}}").unwrap_err().contains("stray"));
    }
}
