//! KEP-3070's split of an allocation range: a static band at the bottom
//! that users pick explicit values from, and the dynamic band above it
//! that automatic allocation tries first, so explicit and automatic
//! choices rarely collide.

use std::hash::{BuildHasher, Hasher};

/// A range of `size` values (offsets `0..size`) split into bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bands {
    size: u64,
    static_size: u64,
}

impl Bands {
    /// Upstream's split of `size` values: the static band is
    /// `min(max(min, basis/step), max)` values, none when `basis` is `min`
    /// or less. `basis` is what upstream divides: the whole CIDR for
    /// addresses (network and broadcast included), the range for ports.
    pub fn new(size: u64, basis: u64, step: u64, min: u64, max: u64) -> Self {
        let static_size = if basis <= min {
            0
        } else {
            (basis / step).clamp(min, max).min(size)
        };
        Self { size, static_size }
    }

    /// How many values the range has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many values the static (lower) band has.
    pub fn static_size(&self) -> u64 {
        self.static_size
    }

    /// Every offset in the order automatic allocation tries them: the
    /// dynamic band from `seed`'s position round to its start, then the
    /// static band the same way. Starting at a random place, as upstream
    /// does, keeps concurrent allocators from all trying the same value.
    pub fn automatic_order(&self, seed: u64) -> impl Iterator<Item = u64> + '_ {
        let upper = self.size - self.static_size;
        let upper_start = if upper == 0 { 0 } else { seed % upper };
        let lower_start = if self.static_size == 0 {
            0
        } else {
            seed % self.static_size
        };
        let dynamic = (0..upper).map(move |i| self.static_size + (upper_start + i) % upper);
        let fixed = (0..self.static_size).map(move |i| (lower_start + i) % self.static_size);
        dynamic.chain(fixed)
    }
}

/// A random seed for [`Bands::automatic_order`].
pub fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_bands_follow_upstreams_formula() {
        // Service CIDRs: min(max(16, cidr/16), 256), of the whole CIDR.
        assert_eq!(
            Bands::new((1 << 20) - 2, 1 << 20, 16, 16, 256).static_size(),
            256
        );
        assert_eq!(Bands::new(254, 256, 16, 16, 256).static_size(), 16);
        assert_eq!(Bands::new(4094, 4096, 16, 16, 256).static_size(), 256);
        assert_eq!(Bands::new(1022, 1024, 16, 16, 256).static_size(), 64);
        // NodePorts: min(max(16, size/32), 128): 30000-30085 for the default.
        assert_eq!(Bands::new(2768, 2768, 32, 16, 128).static_size(), 86);
        // A range no bigger than the minimum is all dynamic.
        assert_eq!(Bands::new(14, 16, 16, 16, 256).static_size(), 0);
        assert_eq!(
            Bands::new(14, 16, 16, 16, 256).automatic_order(5).count(),
            14
        );
    }

    #[test]
    fn automatic_order_tries_the_dynamic_band_first_and_covers_everything() {
        let bands = Bands::new(64, 64, 4, 16, 256);
        for seed in [0, 7, 47, 1 << 40] {
            let order: Vec<u64> = bands.automatic_order(seed).collect();
            assert_eq!(order.len(), 64);
            assert!(order[..48].iter().all(|o| *o >= 16), "{order:?}");
            assert!(order[48..].iter().all(|o| *o < 16), "{order:?}");
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..64).collect::<Vec<_>>());
        }
        let all_dynamic = Bands::new(8, 8, 16, 16, 256);
        assert_eq!(all_dynamic.automatic_order(3).count(), 8);
    }
}
