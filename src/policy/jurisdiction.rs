//! Built-in jurisdictions for residency fences: which countries' clients a fence
//! holds. A zone policy file may define more, or redefine these, under
//! `[jurisdictions]`.

/// The 27 member states of the European Union (GDPR applies), ISO 3166-1 alpha-2.
pub const EU: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// The European Economic Area: the EU plus Iceland, Liechtenstein and Norway, where
/// GDPR applies as well.
pub(crate) const EEA_EXTRA: &[&str] = &["IS", "LI", "NO"];

/// The countries of a built-in jurisdiction, or `None` if the name is not built in.
pub(crate) fn builtin(name: &str) -> Option<Vec<[u8; 2]>> {
    let list: Vec<&str> = match name {
        "EU" => EU.to_vec(),
        "EEA" => EU.iter().chain(EEA_EXTRA).copied().collect(),
        // China's PIPL: mainland China only (Hong Kong and Macao have their own laws).
        "CN" => vec!["CN"],
        _ => return None,
    };
    Some(list.iter().map(|c| to_cc(c)).collect())
}

fn to_cc(c: &str) -> [u8; 2] {
    let b = c.as_bytes();
    [b[0], b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eu_has_27_and_eea_30() {
        assert_eq!(builtin("EU").map(|v| v.len()), Some(27));
        assert_eq!(builtin("EEA").map(|v| v.len()), Some(30));
        assert!(builtin("EU").is_some_and(|v| v.contains(b"IE") && !v.contains(b"GB")));
        assert!(builtin("XX").is_none());
    }
}
