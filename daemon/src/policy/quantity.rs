//! Kubernetes resource quantities (`512Mi`, `1.5Gi`, `250m`, `2`), enough to
//! compare limits and compute caps without floating-point surprises for the
//! usual forms.

/// Parse a quantity into base units (bytes for memory, millicores ×1000 for
/// cpu is the caller's business: this returns the plain value, so `250m` is 0.25).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let value: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let v = value * factor;
    v.is_finite().then_some(v)
}

/// Format a byte count as the largest binary unit that keeps it whole
/// (rounded down to whole MiB above 1 MiB, so proposals stay readable).
pub fn format_bytes(bytes: f64) -> String {
    let b = bytes.max(0.0).floor() as u64;
    const MI: u64 = 1024 * 1024;
    const GI: u64 = 1024 * MI;
    if b >= MI {
        let mi = b / MI;
        if (mi * MI).is_multiple_of(GI) && mi >= 1024 {
            return format!("{}Gi", mi * MI / GI);
        }
        return format!("{mi}Mi");
    }
    if b >= 1024 && b.is_multiple_of(1024) {
        return format!("{}Ki", b / 1024);
    }
    b.to_string()
}

/// Format cpu cores as millicores, rounded down.
pub fn format_cpu(cores: f64) -> String {
    let m = (cores.max(0.0) * 1000.0).floor() as u64;
    if m.is_multiple_of(1000) && m > 0 { (m / 1000).to_string() } else { format!("{m}m") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("250m"), Some(0.25));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("1.5G"), Some(1.5e9));
        assert_eq!(parse("12Qi"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn formats_readably() {
        assert_eq!(format_bytes(256.0 * 1024.0 * 1024.0), "256Mi");
        assert_eq!(format_bytes(2048.0 * 1024.0 * 1024.0), "2Gi");
        assert_eq!(format_bytes(1536.0 * 1024.0 * 1024.0), "1536Mi");
        assert_eq!(format_cpu(0.25), "250m");
        assert_eq!(format_cpu(2.0), "2");
    }
}
