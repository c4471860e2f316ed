//! Extending wrapping RTP counters (16-bit sequence numbers, 32-bit timestamps) to 64 bits.

/// Extends a counter of `BITS` bits that wraps around to a `u64` that does not, by choosing
/// the value closest to the highest one seen so far. The first value is placed in the second
/// cycle so that packets reordered before it still extend to smaller values without
/// underflow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Unwrapper<const BITS: u32> {
    highest: Option<u64>,
}

impl<const BITS: u32> Unwrapper<BITS> {
    const CYCLE: u64 = 1 << BITS;
    const HALF: u64 = 1 << (BITS - 1);

    /// The extended value of `value`, without remembering it.
    pub(crate) fn peek(&self, value: u64) -> u64 {
        let value = value & (Self::CYCLE - 1);
        let Some(highest) = self.highest else {
            return value + Self::CYCLE;
        };
        let candidate = (highest & !(Self::CYCLE - 1)) | value;
        if candidate + Self::HALF <= highest {
            candidate + Self::CYCLE
        } else if candidate > highest + Self::HALF && candidate >= Self::CYCLE {
            candidate - Self::CYCLE
        } else {
            candidate
        }
    }

    /// The extended value of `value`; remembered when it is the highest so far.
    pub(crate) fn extend(&mut self, value: u64) -> u64 {
        let extended = self.peek(value);
        if self.highest.is_none_or(|h| extended > h) {
            self.highest = Some(extended);
        }
        extended
    }
}

/// Extended RTP sequence numbers.
pub(crate) type SeqUnwrapper = Unwrapper<16>;
/// Extended RTP timestamps.
pub(crate) type TsUnwrapper = Unwrapper<32>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_continue_across_the_wrap() {
        let mut u = SeqUnwrapper::default();
        let a = u.extend(65534);
        let b = u.extend(65535);
        let c = u.extend(0);
        let d = u.extend(1);
        assert_eq!([b - a, c - b, d - c], [1, 1, 1]);
    }

    #[test]
    fn a_packet_reordered_across_the_wrap_extends_backwards() {
        let mut u = SeqUnwrapper::default();
        let first = u.extend(65535);
        let after = u.extend(2);
        let late = u.extend(0);
        assert_eq!(after - first, 3);
        assert_eq!(late - first, 1);
        let before_first = u.extend(65530);
        assert_eq!(first - before_first, 5);
    }

    #[test]
    fn timestamps_continue_across_the_32_bit_wrap() {
        let mut u = TsUnwrapper::default();
        let a = u.extend(u64::from(u32::MAX - 2999));
        let b = u.extend(1000);
        assert_eq!(b - a, 4000);
    }
}
