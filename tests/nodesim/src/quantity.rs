//! Just enough of Kubernetes resource quantities to compare memory sizes.

/// Bytes in a memory quantity such as `200Mi`, `1G`, `128974848`, `129e6`, `0.5Gi`; `None` when
/// it is not a quantity.
pub fn bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let mult = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_plain() {
        assert_eq!(bytes("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(bytes("1G"), Some(1e9));
        assert_eq!(bytes("129e6"), Some(129e6));
        assert_eq!(bytes("1024"), Some(1024.0));
        assert_eq!(bytes("0.5Gi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(bytes("lots"), None);
        assert_eq!(bytes("5Xi"), None);
    }
}
