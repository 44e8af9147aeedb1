//! Kubernetes object names, checked as the apiserver checks them, before
//! any of them is put into an API path or compared with a list.
//!
//! A namespace is a DNS-1123 label; an object name a DNS-1123 subdomain.
//! Anything else (`../x`, `a%2Fb`, `Kube-System`, `kube-system `, a
//! Cyrillic `е` in `kube-systеm`, an empty or overlong name) is refused
//! with the field named, so it can neither travel up or across an API path
//! nor slip past a forbidden-namespace list by differing only in spelling:
//! once both sides are valid labels, equal names are equal strings.

/// Longest DNS-1123 label (namespaces, each part of a subdomain).
pub const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (object names).
pub const SUBDOMAIN_MAX: usize = 253;

/// A name the apiserver would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{field} must not be empty")]
    Empty { field: String },
    #[error(
        "{field} {shown} is not a valid DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
    )]
    NotLabel { field: String, shown: String },
    #[error(
        "{field} {shown} is not a valid DNS-1123 name (lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit, at most 253 characters)"
    )]
    NotSubdomain { field: String, shown: String },
}

fn is_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The value as shown in an error: quoted with escapes (a trailing space or
/// a control character is visible), cut at 80 characters.
fn shown(value: &str) -> String {
    if value.chars().count() > 80 {
        format!("{:?}…", value.chars().take(80).collect::<String>())
    } else {
        format!("{value:?}")
    }
}

/// A DNS-1123 label, e.g. a namespace.
pub fn label(field: &str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { field: field.to_owned() });
    }
    if is_label(value, LABEL_MAX) {
        Ok(())
    } else {
        Err(NameError::NotLabel { field: field.to_owned(), shown: shown(value) })
    }
}

/// A DNS-1123 subdomain, e.g. the name of a Pod, Deployment, Secret or Node.
pub fn subdomain(field: &str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { field: field.to_owned() });
    }
    if value.len() <= SUBDOMAIN_MAX && value.split('.').all(|part| is_label(part, LABEL_MAX)) {
        Ok(())
    } else {
        Err(NameError::NotSubdomain { field: field.to_owned(), shown: shown(value) })
    }
}

/// A namespace.
pub fn namespace(value: &str) -> Result<(), NameError> {
    label("namespace", value)
}

/// An object name.
pub fn object_name(value: &str) -> Result<(), NameError> {
    subdomain("name", value)
}

/// Every entry of a configured namespace list is a valid namespace name, so
/// that comparing a valid namespace with the list compares names.
pub fn namespace_list(field: &str, list: &[String]) -> Result<(), NameError> {
    list.iter().try_for_each(|n| label(&format!("{field} entry"), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile spellings: path tricks, encodings, case, whitespace, length,
    /// and Unicode lookalikes of `kube-system`.
    const HOSTILE: &[&str] = &[
        "",
        "../x",
        "..",
        ".",
        "a/b",
        "a%2Fb",
        "a%2fb",
        "Kube-System",
        "KUBE-SYSTEM",
        "kube-system ",
        " kube-system",
        "kube-system\n",
        "kube-system\0",
        "kube\u{2010}system",  // Unicode hyphen
        "kube-syst\u{0435}m",  // Cyrillic е
        "kube-sy\u{017F}tem",  // long s
        "\u{FF4B}ube-system",  // fullwidth k
        "kube-system\u{200B}", // zero-width space
        "-kube",
        "kube-",
        "a_b",
        "a b",
        "a?b",
        "a#b",
    ];

    #[test]
    fn hostile_namespaces_are_refused_with_the_field_and_value() {
        for bad in HOSTILE {
            let err = namespace(bad).unwrap_err().to_string();
            assert!(err.starts_with("namespace "), "{bad:?}: {err}");
            if !bad.is_empty() {
                assert!(err.contains("not a valid DNS-1123 label"), "{bad:?}: {err}");
                assert!(err.contains(&format!("{bad:?}")), "the value is shown escaped: {err}");
            }
        }
        assert_eq!(namespace("").unwrap_err().to_string(), "namespace must not be empty");
        assert!(namespace(&"a".repeat(63)).is_ok());
        assert!(namespace(&"a".repeat(64)).is_err());
        assert!(namespace("a.b").is_err(), "a namespace has no dots");
        assert!(namespace("kube-system").is_ok());
        assert!(namespace("shop-2").is_ok());
    }

    #[test]
    fn hostile_object_names_are_refused() {
        for bad in HOSTILE.iter().copied().chain(["a..b", ".a", "a.", "a.-b"]) {
            let err = object_name(bad).unwrap_err().to_string();
            assert!(err.starts_with("name "), "{bad:?}: {err}");
        }
        let longest = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
        assert_eq!(longest.len(), SUBDOMAIN_MAX);
        assert!(object_name(&longest).is_ok());
        assert!(object_name(&format!("{longest}d")).is_err(), "overlong");
        assert!(object_name(&format!("{}.b", "a".repeat(64))).is_err(), "a part over 63");
        assert!(object_name("web-7d9f8b6c5-x2k4q").is_ok());
        assert!(object_name("node-1.example.com").is_ok());
        let err = object_name(&"x/".repeat(100)).unwrap_err().to_string();
        assert!(err.contains('…') && err.len() < 300, "long values are cut in errors: {err}");
    }

    #[test]
    fn configured_lists_must_hold_names() {
        assert!(namespace_list("policy.forbidden_namespaces", &["kube-system".into()]).is_ok());
        let err = namespace_list("policy.forbidden_namespaces", &["Kube-System".into()]).unwrap_err();
        assert!(err.to_string().starts_with("policy.forbidden_namespaces entry \"Kube-System\""), "{err}");
    }
}
