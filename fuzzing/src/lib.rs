//! Seeded, bounded fuzzing for Skiff's tests: a small deterministic
//! random source and byte-level mutation of known-good inputs. The fuzz
//! tests of the control plane's decoders and those against a running
//! control plane draw from it, so a failure names a seed and replays.

/// xorshift64*: small, deterministic, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source starting at `seed` (zero is replaced: xorshift stays at
    /// zero for ever).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A few random edits of `input`: bytes replaced (from `pool`, or any
/// byte), removed, inserted from `pool`, runs duplicated, the rest cut.
/// `pool` must not be empty.
pub fn mutate(rng: &mut Rng, input: &[u8], pool: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let i = rng.below(bytes.len().max(1));
        match rng.below(6) {
            0 if !bytes.is_empty() => bytes[i] = pool[rng.below(pool.len())],
            1 if !bytes.is_empty() => bytes[i] = rng.next_u64() as u8,
            2 if !bytes.is_empty() => {
                bytes.remove(i);
            }
            3 => bytes.insert(i.min(bytes.len()), pool[rng.below(pool.len())]),
            4 if !bytes.is_empty() => {
                let end = (i + 1 + rng.below(16)).min(bytes.len());
                let run = bytes[i..end].to_vec();
                bytes.splice(i..i, run);
            }
            _ => bytes.truncate(i),
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_stays_in_bounds() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert!(first.windows(2).all(|w| w[0] != w[1]), "{first:?}");
        assert!((0..1000).all(|_| a.below(3) < 3));
        assert_eq!(a.below(0), 0);
        let mut zero = Rng::new(0);
        assert_ne!(zero.next_u64(), 0, "a zero seed does not stick at zero");
    }

    #[test]
    fn mutations_change_inputs_and_use_the_pool() {
        let mut rng = Rng::new(42);
        let input = b"Bearer abcdef.0123456789abcdef";
        let mutated: Vec<Vec<u8>> = (0..200).map(|_| mutate(&mut rng, input, b"#")).collect();
        assert!(mutated.iter().any(|m| m.as_slice() != input));
        assert!(mutated.iter().any(|m| m.contains(&b'#')));
        assert!(mutated.iter().any(|m| m.len() > input.len()));
        assert!(mutated.iter().any(|m| m.len() < input.len()));
    }
}
