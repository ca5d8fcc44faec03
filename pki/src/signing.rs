//! How long signed certificates last: `--cluster-signing-duration`, which
//! the control plane takes and `skiff up` / `skiff server` pass on, in
//! Go's duration syntax with upstream's default.

use std::time::Duration;

/// Upstream's `--cluster-signing-duration` default, as the flag spells it.
pub const DEFAULT_DURATION_TEXT: &str = "8760h";

/// [`DEFAULT_DURATION_TEXT`] as a duration.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(8760 * 3600);

/// A hundred years: more than any CA here lives, less than overflows a date.
const MAX_SECONDS: u64 = 100 * 8760 * 3600;

/// A Go duration as upstream's flag takes it (`8760h`, `720h0m0s`,
/// `90m`): whole hours, minutes and seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() || text.is_empty() {
        return Err(invalid());
    }
    // A certificate of no lifetime could never be used, nor renewed.
    if !(1..=MAX_SECONDS).contains(&total) {
        return Err(format!(
            "invalid duration {text:?}: from 1s to {}h",
            MAX_SECONDS / 3600
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(parse_duration(DEFAULT_DURATION_TEXT), Ok(DEFAULT_DURATION));
        assert_eq!(parse_duration("1h30m10s"), Ok(Duration::from_secs(5410)));
        assert!(parse_duration("10d").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("18446744073709551615h1s").is_err());
    }
}
