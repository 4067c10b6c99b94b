//! Money: integer minor units with an ISO 4217 currency code. Never a float.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::Refusal;

/// The largest amount a command may carry: 2^53 − 1 minor units, the largest integer that every
/// JSON reader keeps exact (JavaScript's `Number.MAX_SAFE_INTEGER`, and any reader that parses
/// numbers as IEEE doubles). A larger one would reach such consumers of our events as another
/// amount. It is a rule of the wire (`invalid_value` above it), not of [`Amount`]: events stored
/// before the rule existed still read back.
pub const AMOUNT_MAX: u64 = (1 << 53) - 1;

/// A positive amount of minor units (cents): an order amount or a proposed refund.
/// Payouts, which may be zero, are plain `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Amount(u64);

impl Amount {
    /// `invalid_value` unless `minor_units > 0`.
    pub fn new(minor_units: u64) -> Result<Amount, Refusal> {
        if minor_units == 0 {
            return Err(Refusal::invalid_value("amount must be greater than 0"));
        }
        Ok(Amount(minor_units))
    }

    /// The amount in minor units.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Amount::new(u64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Exactly three ASCII upper-case letters, as ISO 4217 codes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// `invalid_value` unless `code` is three ASCII upper-case letters.
    pub fn parse(code: &str) -> Result<Currency, Refusal> {
        match <[u8; 3]>::try_from(code.as_bytes()) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Currency(bytes)),
            _ => Err(Refusal::invalid_value(
                "currency must be three upper-case letters (ISO 4217)",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a currency is ASCII")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount with its currency: `{"amount": 12999, "currency": "USD"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    amount: Amount,
    currency: Currency,
}

impl Money {
    pub fn new(amount: Amount, currency: Currency) -> Money {
        Money { amount, currency }
    }

    pub fn amount(&self) -> Amount {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}
