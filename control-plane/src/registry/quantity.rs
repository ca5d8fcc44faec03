//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`):
//! k8s-openapi keeps them as plain strings, so the scheduler parses them
//! here. Values are exact until scaled; scaling rounds up, as upstream's
//! `Quantity.Value()` / `MilliValue()` do, so a request is never
//! under-counted.

use thiserror::Error;

/// Why a quantity string is not one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// Not `<number><suffix>`; the text is upstream's validation message.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
    )]
    Syntax(String),
    /// Too many digits or too large an exponent to hold.
    #[error("quantity {0:?} is out of range")]
    OutOfRange(String),
}

/// A parsed quantity: `mantissa × 2^pow2 × 10^pow10`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    pow2: u32,
    pow10: i32,
}

/// Digits kept in the mantissa: i128 holds 38; more would be noise anyway.
const MAX_DIGITS: usize = 36;

impl Quantity {
    /// Parses `text` (surrounding whitespace is not allowed, as upstream).
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let syntax = || QuantityError::Syntax(text.to_string());
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(syntax());
        }
        // Leading zeros carry no precision; trailing fraction zeros neither.
        let whole = whole.trim_start_matches('0');
        let fraction = fraction.trim_end_matches('0');
        if whole.len() + fraction.len() > MAX_DIGITS {
            return Err(QuantityError::OutOfRange(text.to_string()));
        }
        let mut mantissa: i128 = 0;
        for d in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa * 10 + i128::from(d - b'0');
        }
        if negative {
            mantissa = -mantissa;
        }
        let mut pow10 = -(fraction.len() as i32);
        let mut pow2 = 0;
        match suffix {
            "" => {}
            "Ki" => pow2 = 10,
            "Mi" => pow2 = 20,
            "Gi" => pow2 = 30,
            "Ti" => pow2 = 40,
            "Pi" => pow2 = 50,
            "Ei" => pow2 = 60,
            "n" => pow10 -= 9,
            "u" => pow10 -= 6,
            "m" => pow10 -= 3,
            "k" => pow10 += 3,
            "M" => pow10 += 6,
            "G" => pow10 += 9,
            "T" => pow10 += 12,
            "P" => pow10 += 15,
            "E" => pow10 += 18,
            _ => {
                let exponent = suffix
                    .strip_prefix(['e', 'E'])
                    .filter(|e| {
                        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                    })
                    .ok_or_else(syntax)?;
                let exponent: i32 = exponent
                    .parse()
                    .map_err(|_| QuantityError::OutOfRange(text.to_string()))?;
                pow10 = pow10
                    .checked_add(exponent)
                    .ok_or_else(|| QuantityError::OutOfRange(text.to_string()))?;
            }
        }
        Ok(Self {
            mantissa,
            pow2,
            pow10,
        })
    }

    /// The value in units of `10^-scale`, rounded up (towards +∞) and
    /// saturated to the `i64` range.
    fn scaled(&self, scale: i32) -> i64 {
        let saturate = |negative: bool| if negative { i64::MIN } else { i64::MAX };
        let negative = self.mantissa < 0;
        let mut value = self.mantissa;
        for _ in 0..self.pow2 {
            match value.checked_mul(2) {
                Some(v) => value = v,
                None => return saturate(negative),
            }
        }
        let exponent = self.pow10.saturating_add(scale);
        if exponent >= 0 {
            for _ in 0..exponent {
                match value.checked_mul(10) {
                    Some(v) => value = v,
                    None => return saturate(negative),
                }
            }
        } else {
            // Dividing by more than 10^38 leaves 0 or ±1 after rounding up.
            let divisor = 10i128.checked_pow(exponent.unsigned_abs());
            value = match divisor {
                Some(d) => value.div_euclid(d) + i128::from(value.rem_euclid(d) != 0),
                None => i128::from(value > 0),
            };
        }
        i64::try_from(value).unwrap_or_else(|_| saturate(negative))
    }

    /// Whole units (bytes for memory), rounded up.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// Thousandths of a unit (millicores for cpu), rounded up.
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> i64 {
        Quantity::parse(s).expect(s).milli_value()
    }

    fn bytes(s: &str) -> i64 {
        Quantity::parse(s).expect(s).value()
    }

    /// Each quantity of `cases` gives its number through `value`.
    fn check(value: fn(&str) -> i64, cases: &[(&str, i64)]) {
        for &(quantity, want) in cases {
            assert_eq!(value(quantity), want, "{quantity}");
        }
    }

    #[test]
    fn cpu_in_millicores() {
        check(
            milli,
            &[
                ("100m", 100),
                ("0.5", 500),
                (".5", 500),
                ("2", 2000),
                ("2.", 2000),
                ("1.25", 1250),
                ("+3", 3000),
                ("0", 0),
                ("250000u", 250),
                ("1k", 1_000_000),
            ],
        );
    }

    #[test]
    fn fractions_of_a_millicore_round_up_like_upstream() {
        // Upstream: resource.MustParse("0.0001").MilliValue() == 1.
        check(milli, &[("0.0001", 1), ("1n", 1), ("1500u", 2)]);
        check(bytes, &[("0.5", 1)]);
        // Rounding up is towards +∞ for negative values too.
        check(milli, &[("-0.0001", 0), ("-1500u", -1)]);
    }

    #[test]
    fn memory_in_bytes() {
        check(
            bytes,
            &[
                ("128Mi", 128 * 1024 * 1024),
                ("1Ki", 1024),
                ("1.5Gi", 3 * 512 * 1024 * 1024),
                ("1G", 1_000_000_000),
                ("512k", 512_000),
                ("1e3", 1000),
                ("1E3", 1000),
                ("12e6", 12_000_000),
                ("1e+3", 1000),
                ("5000e-3", 5),
                ("1Ei", 1 << 60),
                ("1M", 1_000_000),
                ("1T", 1_000_000_000_000),
                ("1Ti", 1 << 40),
                ("2P", 2_000_000_000_000_000),
                ("1Pi", 1 << 50),
                ("123", 123),
                ("007", 7),
            ],
        );
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        check(
            bytes,
            &[("100E", i64::MAX), ("16Ei", i64::MAX), ("-16Ei", i64::MIN)],
        );
        check(milli, &[("1e30", i64::MAX)]);
        check(bytes, &[("1e-60", 1), ("0e-60", 0)]);
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        for bad in [
            "", "m", "1.2.3", "1 ", " 1", "1mi", "1KI", "1kb", "abc", "1e", "1e+", "e3", "1Mi2",
            "--1", "1k3", ".", "+",
        ] {
            assert!(
                matches!(Quantity::parse(bad), Err(QuantityError::Syntax(_))),
                "{bad:?} should be rejected"
            );
        }
        assert!(matches!(
            Quantity::parse("1234567890123456789012345678901234567890"),
            Err(QuantityError::OutOfRange(_))
        ));
        assert!(matches!(
            Quantity::parse("1e99999999999"),
            Err(QuantityError::OutOfRange(_))
        ));
    }

    #[test]
    fn error_text_names_the_upstream_pattern() {
        let e = Quantity::parse("1kb").expect_err("invalid");
        assert!(e.to_string().starts_with("quantities must match"), "{e}");
    }
}
