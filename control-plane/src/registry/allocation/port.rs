//! The NodePort range (`--service-node-port-range`), `30000-32767` by
//! default.

use std::fmt;

use super::RangeError;
use super::bands::Bands;

/// An inclusive range of node ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// Parses `30000-32767` (or `30000+2767`, upstream's other form: the
    /// first port and how many follow it).
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let bad = || RangeError::Ports(text.to_string());
        let text = text.trim();
        let (first, last) = if let Some((a, b)) = text.split_once('-') {
            let first: u16 = a.parse().map_err(|_| bad())?;
            (first, b.parse::<u16>().map_err(|_| bad())?)
        } else if let Some((a, b)) = text.split_once('+') {
            let first: u16 = a.parse().map_err(|_| bad())?;
            let more: u16 = b.parse().map_err(|_| bad())?;
            (first, first.checked_add(more).ok_or_else(bad)?)
        } else {
            let only: u16 = text.parse().map_err(|_| bad())?;
            (only, only)
        };
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(Self { first, last })
    }

    /// How many ports the range has.
    pub fn size(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    /// The static and dynamic bands (KEP-3070: the static band is
    /// `size/32`, between 16 and 128 ports, none for 16 ports or fewer).
    pub fn bands(&self) -> Bands {
        Bands::new(self.size(), self.size(), 32, 16, 128)
    }

    /// The port at `offset`.
    pub fn at(&self, offset: u64) -> u16 {
        let offset = u16::try_from(offset).unwrap_or(0);
        self.first + offset
    }

    /// The offset of `port`, `None` outside the range.
    pub fn offset(&self, port: i64) -> Option<u64> {
        (i64::from(self.first)..=i64::from(self.last))
            .contains(&port)
            .then(|| u64::try_from(port - i64::from(self.first)).unwrap_or(0))
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Default for PortRange {
    fn default() -> Self {
        Self {
            first: 30000,
            last: 32767,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_and_its_static_band() {
        let range = PortRange::parse("30000-32767").expect("parse");
        assert_eq!(range, PortRange::default());
        assert_eq!(range.to_string(), "30000-32767");
        assert_eq!(range.size(), 2768);
        let bands = range.bands();
        assert_eq!(range.at(bands.static_size() - 1), 30085);
        assert_eq!(range.offset(30123), Some(123));
        assert_eq!(range.offset(32767), Some(2767));
        assert_eq!(range.offset(32768), None);
        assert_eq!(range.offset(8080), None);
    }

    #[test]
    fn other_forms_and_malformed_ranges() {
        assert_eq!(
            PortRange::parse("20000+100").expect("plus").to_string(),
            "20000-20100"
        );
        for bad in ["", "a-b", "32767-30000", "0-10", "30000-70000"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }
}
