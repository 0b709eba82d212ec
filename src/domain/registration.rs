//! What an operator registers of a charging point, and the rules each part must keep: an id
//! that travels safely in frames, records and logs, a location for people, and a tariff
//! that is a real, bounded price.

use super::money::{self, Tariff};
use serde::{Deserialize, Serialize};

/// The id rule is the wire's: ids travel in frames, records and logs.
pub use crate::messages::{check_cp_id, check_driver_id, shown, MAX_ID_LEN as MAX_CP_ID_LEN};
/// The longest location text.
pub const MAX_LOCATION_LEN: usize = 80;
pub use super::money::MAX_PRICE_EUR_KWH;

/// A charging point's terms: where it is and what it charges. Set by an operator, never by
/// whatever its monitor claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpTerms {
    pub location: String,
    #[serde(rename = "price_eur_kwh", with = "money::as_eur_per_kwh")]
    pub tariff: Tariff,
}

impl CpTerms {
    /// Both parts checked, the first broken rule named.
    pub fn new(location: &str, price_eur_kwh: f64) -> Result<CpTerms, String> {
        check_location(location)?;
        let tariff = Tariff::from_eur_per_kwh(price_eur_kwh)?;
        Ok(CpTerms {
            location: location.trim().to_owned(),
            tariff,
        })
    }
}

/// A location: 1 to [`MAX_LOCATION_LEN`] characters of printable text, no `#`.
pub fn check_location(location: &str) -> Result<(), String> {
    let trimmed = location.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_LOCATION_LEN
        || trimmed.chars().any(|c| c.is_control() || c == '#')
    {
        return Err(format!(
            "a location has 1 to {MAX_LOCATION_LEN} printable characters and no '#' (got {})",
            shown(location)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        assert!(check_cp_id("CP-001_a.b").is_ok());
        for bad in ["", "PX#D28", "a b", "CP\n1", "\u{1b}[31m", &"x".repeat(33)] {
            assert!(check_cp_id(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn terms_keep_the_tariff_exact() {
        assert_eq!(
            CpTerms::new("Alicante", 0.355).unwrap().tariff,
            Tariff::from_hundredths_of_cent(3550)
        );
        for bad in [0.0, 1e308, f64::NAN, 0.123_45] {
            assert!(CpTerms::new("Alicante", bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn locations_are_printable_text() {
        assert_eq!(
            CpTerms::new("  Alicante ", 0.3).unwrap().location,
            "Alicante"
        );
        for bad in ["", "   ", "a#b", "line\nbreak", &"x".repeat(81)] {
            assert!(check_location(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refusals_show_untrusted_text_escaped_and_short() {
        let shown = shown(&format!("a\nb{}", "x".repeat(100)));
        assert!(!shown.contains('\n'));
        assert!(shown.chars().count() < 50, "{shown}");
    }
}
