//! Money, tariffs and energy as integers, and the one rule that prices a supply.
//!
//! Amounts are whole cents, tariffs whole hundredths of a cent per kWh (0.0001 €/kWh),
//! energy whole watt-hours. The cost of a supply is `Wh × tariff`, an exact integer in units
//! of 10⁻⁷ €, rounded once to the cent, half away from zero (`docs/PROTOCOL.md`, "Money").
//! The wire keeps its JSON numbers in euros and kWh: a number read from it is taken as the
//! decimal it is written as, and a number written to it is the exact decimal of the integer.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

pub use crate::messages::MAX_PRICE_EUR_KWH;

/// An amount of money in whole euro cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Cents(pub i64);

/// A price per kWh in hundredths of a cent (0.355 €/kWh is `Tariff(3550)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Tariff(i64);

/// Energy in whole watt-hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Energy(pub i64);

/// The cost of `energy` at `tariff`, to the cent, half away from zero.
pub fn cost(energy: Energy, tariff: Tariff) -> Cents {
    // Wh × (10⁻⁴ €/kWh) = 10⁻⁷ €; a cent is 10⁵ of those. i128: no product can overflow.
    let exact = i128::from(energy.0) * i128::from(tariff.0);
    let cents = div_half_away(exact, 100_000);
    Cents(i64::try_from(cents).unwrap_or(if cents < 0 { i64::MIN } else { i64::MAX }))
}

/// `n / d` for `d > 0`, a remainder of half or more going away from zero.
fn div_half_away(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d {
        q + n.signum()
    } else {
        q
    }
}

impl Cents {
    /// The amount in euros as a JSON number: the double nearest `cents / 100`, which prints
    /// as exactly that two-decimal amount.
    pub fn eur(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// An amount written in euros, to the nearest cent; `None` if not a finite amount.
    pub fn from_eur(eur: f64) -> Option<Cents> {
        decimal_scaled(eur, 2).map(Cents)
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        Cents(iter.map(|c| c.0).fold(0i64, i64::saturating_add))
    }
}

impl fmt::Display for Cents {
    /// `12.34 €` without the sign: `12.34`, `-0.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Tariff {
    /// A tariff as an operator writes it, in €/kWh: above 0, at most
    /// [`MAX_PRICE_EUR_KWH`], and a whole number of 0.0001 €/kWh.
    pub fn from_eur_per_kwh(price: f64) -> Result<Tariff, String> {
        if !(price.is_finite() && price > 0.0 && price <= MAX_PRICE_EUR_KWH) {
            return Err(format!(
                "a tariff is a price above 0 and at most {MAX_PRICE_EUR_KWH} €/kWh (got {price})"
            ));
        }
        // A price computed in floating point (0.30 + 0.05) is the 4-decimal one it means;
        // one with more decimals than that is refused, never silently changed.
        let scaled = price * 10_000.0;
        if (scaled - scaled.round()).abs() > 1e-6 {
            return Err(format!(
                "a tariff is kept to 0.0001 €/kWh (got {price}, which has more decimals)"
            ));
        }
        Ok(Tariff(scaled.round() as i64))
    }

    /// A tariff from whole hundredths of a cent per kWh, for code that builds one.
    pub const fn from_hundredths_of_cent(units: i64) -> Tariff {
        Tariff(units)
    }

    /// The tariff in €/kWh as a JSON number (the exact decimal, at most 4 places).
    pub fn eur_per_kwh(self) -> f64 {
        self.0 as f64 / 10_000.0
    }

    /// The nearest tariff to a price in €/kWh, unchecked: for reading the price a record
    /// or a command already holds, which was checked when it was set.
    pub fn nearest(price: f64) -> Tariff {
        Tariff(decimal_scaled(price, 4).unwrap_or(0))
    }
}

impl fmt::Display for Tariff {
    /// In €/kWh, with the decimals it has: `0.355`, `0.3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.eur_per_kwh())
    }
}

impl Energy {
    /// Energy written in kWh, to the nearest watt-hour; `None` if not a finite amount.
    pub fn from_kwh(kwh: f64) -> Option<Energy> {
        decimal_scaled(kwh, 3).map(Energy)
    }

    /// The energy in kWh as a JSON number (the exact decimal, at most 3 places).
    pub fn kwh(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for Energy {
    /// In kWh to the watt-hour: `1.234`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:03}", abs / 1000, abs % 1000)
    }
}

/// The largest magnitude read from a number: beyond it no amount is real, and its digits
/// would not fit an `i64` once scaled.
const LARGEST: f64 = 1e12;

/// `x × 10^places` as an integer, reading `x` as the shortest decimal that prints it (what
/// a JSON writer put on the wire) and rounding that decimal half away from zero — no
/// floating-point arithmetic, so `0.125` is 12.5 hundredths, never 12.4999….
fn decimal_scaled(x: f64, places: u32) -> Option<i64> {
    if !x.is_finite() || x.abs() >= LARGEST {
        return None;
    }
    // `Display` of an f64 is its shortest round-trip decimal, never in exponent form.
    let text = format!("{}", x.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
    let kept = fraction
        .get(..fraction.len().min(places as usize))
        .unwrap_or("");
    let mut scaled =
        digits(whole) * 10i64.pow(places) + digits(kept) * 10i64.pow(places - kept.len() as u32);
    if fraction
        .as_bytes()
        .get(places as usize)
        .is_some_and(|&b| b >= b'5')
    {
        scaled += 1;
    }
    Some(if x < 0.0 { -scaled } else { scaled })
}

/// Reads a stored amount: whole cents, or euros as a float in a record written before
/// money was kept in cents (serde_json always writes a float with a fraction or exponent).
pub fn stored_cents<'de, D: Deserializer<'de>>(d: D) -> Result<Cents, D::Error> {
    stored(d, 2).map(Cents)
}

/// Reads a stored tariff: whole hundredths of a cent, or €/kWh as a float (older records).
pub fn stored_tariff<'de, D: Deserializer<'de>>(d: D) -> Result<Tariff, D::Error> {
    stored(d, 4).map(Tariff)
}

/// Reads stored energy: whole watt-hours, or kWh as a float (older records).
pub fn stored_energy<'de, D: Deserializer<'de>>(d: D) -> Result<Energy, D::Error> {
    stored(d, 3).map(Energy)
}

fn stored<'de, D: Deserializer<'de>>(d: D, places: u32) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Whole(i64),
        Legacy(f64),
    }
    match Stored::deserialize(d)? {
        Stored::Whole(n) => Ok(n),
        Stored::Legacy(x) => decimal_scaled(x, places)
            .ok_or_else(|| serde::de::Error::custom(format!("{x} is not an amount"))),
    }
}

/// Serde for a field the wire shows in euros: `#[serde(with = "money::as_eur")]`.
pub mod as_eur {
    use super::Cents;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &Cents, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(c.eur())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cents, D::Error> {
        let eur = f64::deserialize(d)?;
        Cents::from_eur(eur).ok_or_else(|| serde::de::Error::custom("not an amount"))
    }
}

/// Serde for a field the wire shows in €/kWh: `#[serde(with = "money::as_eur_per_kwh")]`.
pub mod as_eur_per_kwh {
    use super::Tariff;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Tariff, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(t.eur_per_kwh())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tariff, D::Error> {
        Ok(Tariff::nearest(f64::deserialize(d)?))
    }
}

/// Serde for a field the wire shows in kWh: `#[serde(with = "money::as_kwh")]`.
pub mod as_kwh {
    use super::Energy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Energy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(e.kwh())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Energy, D::Error> {
        let kwh = f64::deserialize(d)?;
        Energy::from_kwh(kwh).ok_or_else(|| serde::de::Error::custom("not an amount of energy"))
    }
}

/// Energy in kWh, kept to the watt-hour (a measured amount that is not finite is none).
pub fn round_kwh(kwh: f64) -> f64 {
    Energy::from_kwh(kwh).unwrap_or_default().kwh()
}

/// The cost of `kwh` at `price_eur_kwh` as the wire writes it, for parts that hold the
/// figures as JSON numbers (the engine): [`cost`] on their exact values.
pub fn cost_eur(kwh: f64, price_eur_kwh: f64) -> f64 {
    let energy = Energy::from_kwh(kwh).unwrap_or_default();
    cost(energy, Tariff::nearest(price_eur_kwh)).eur()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tariff(price: f64) -> Tariff {
        Tariff::from_eur_per_kwh(price).unwrap()
    }

    fn kwh(kwh: f64) -> Energy {
        Energy::from_kwh(kwh).unwrap()
    }

    /// The worked examples of docs/PROTOCOL.md, "Money".
    #[test]
    fn a_supply_costs_its_energy_at_the_tariff_rounded_half_up_to_the_cent() {
        // 1.234 kWh × 0.35 = 0.4319 €: down to 0.43.
        assert_eq!(cost(kwh(1.234), tariff(0.35)), Cents(43));
        // Half a cent goes up, where f64 arithmetic went down (52.49999… cents, 100.4999…).
        assert_eq!(cost(kwh(1.5), tariff(0.35)), Cents(53));
        assert_eq!(cost(kwh(2.01), tariff(0.5)), Cents(101));
        assert_eq!(cost(kwh(1.25), tariff(0.1)), Cents(13));
        assert_eq!(cost(kwh(1.0), tariff(0.355)), Cents(36));
        // Just under half a cent goes down: 0.001 kWh × 4.999 €/kWh = 0.004999 €.
        assert_eq!(cost(kwh(0.001), tariff(4.999)), Cents(0));
        assert_eq!(cost(kwh(0.001), tariff(5.0)), Cents(1));
        // Nothing costs nothing; the largest supply at the highest tariff is exact.
        assert_eq!(cost(Energy(0), tariff(0.35)), Cents(0));
        assert_eq!(cost(kwh(10_000.0), tariff(10.0)), Cents(10_000_000));
        assert_eq!(cost(kwh(9_999.999), tariff(9.9999)), Cents(9_999_899));
        // Half away from zero on both sides (no negative supply exists; the rule is whole).
        assert_eq!(div_half_away(-15, 10), -2);
        assert_eq!(div_half_away(-14, 10), -1);
        assert_eq!(cost(Energy(i64::MAX), Tariff(i64::MAX)), Cents(i64::MAX));
    }

    #[test]
    fn numbers_on_the_wire_are_read_as_the_decimals_they_are_written_as() {
        assert_eq!(Cents::from_eur(0.125), Some(Cents(13)));
        assert_eq!(Cents::from_eur(1.005), Some(Cents(101)));
        assert_eq!(Cents::from_eur(-0.125), Some(Cents(-13)));
        assert_eq!(Cents::from_eur(29_999.85), Some(Cents(2_999_985)));
        assert_eq!(Energy::from_kwh(0.0125), Some(Energy(13)));
        assert_eq!(Energy::from_kwh(0.123_456), Some(Energy(123)));
        assert_eq!(Energy::from_kwh(12.0), Some(Energy(12_000)));
        for bad in [f64::NAN, f64::INFINITY, 1e308] {
            assert_eq!(Cents::from_eur(bad), None);
        }
        // The other way: the integer's exact decimal.
        assert_eq!(serde_json::to_string(&Cents(101).eur()).unwrap(), "1.01");
        assert_eq!(serde_json::to_string(&Cents(30).eur()).unwrap(), "0.3");
        assert_eq!(
            serde_json::to_string(&tariff(0.355).eur_per_kwh()).unwrap(),
            "0.355"
        );
        assert_eq!(serde_json::to_string(&Energy(1234).kwh()).unwrap(), "1.234");
        assert_eq!(Cents(-5).to_string(), "-0.05");
        assert_eq!(Cents(123_456).to_string(), "1234.56");
        assert_eq!(Energy(12).to_string(), "0.012");
    }

    #[test]
    fn every_two_decimal_amount_survives_the_wire() {
        for c in (0..2_000_000).step_by(7).chain([i64::from(u32::MAX) * 100]) {
            let text = serde_json::to_string(&Cents(c).eur()).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(Cents::from_eur(back), Some(Cents(c)), "{text}");
        }
    }

    #[test]
    fn tariffs_are_finite_positive_bounded_and_kept_to_a_hundredth_of_a_cent() {
        assert_eq!(tariff(0.355), Tariff(3550));
        assert_eq!(tariff(MAX_PRICE_EUR_KWH), Tariff(100_000));
        assert_eq!(tariff(0.0001), Tariff(1));
        assert_eq!(tariff(0.1 + 0.2), Tariff(3000));
        for bad in [0.0, -0.1, 1e308, f64::NAN, f64::INFINITY, 10.01, 0.123_45] {
            assert!(Tariff::from_eur_per_kwh(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn records_from_before_cents_still_load() {
        #[derive(Deserialize)]
        struct Old {
            #[serde(deserialize_with = "stored_cents")]
            eur: Cents,
            #[serde(deserialize_with = "stored_tariff")]
            price: Tariff,
            #[serde(deserialize_with = "stored_energy")]
            kwh: Energy,
        }
        let old: Old = serde_json::from_str(r#"{"eur":0.43,"price":0.35,"kwh":1.234}"#).unwrap();
        assert_eq!(
            (old.eur, old.price, old.kwh),
            (Cents(43), Tariff(3500), Energy(1234))
        );
        let whole: Old = serde_json::from_str(r#"{"eur":0.0,"price":1.0,"kwh":5.0}"#).unwrap();
        assert_eq!(
            (whole.eur, whole.price, whole.kwh),
            (Cents(0), Tariff(10_000), Energy(5000))
        );
        let new: Old = serde_json::from_str(r#"{"eur":43,"price":3500,"kwh":1234}"#).unwrap();
        assert_eq!(
            (new.eur, new.price, new.kwh),
            (Cents(43), Tariff(3500), Energy(1234))
        );
    }

    #[test]
    fn the_wire_helpers_price_and_round_as_the_store_does() {
        assert_eq!(cost_eur(1.234, 0.35), 0.43);
        assert_eq!(cost_eur(1.5, 0.35), 0.53);
        assert_eq!(cost_eur(0.0, 0.35), 0.0);
        assert_eq!(round_kwh(0.123_456), 0.123);
    }
}
