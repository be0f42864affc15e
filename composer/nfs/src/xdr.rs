//! XDR (RFC 4506) primitives: a growable encoder and a bounds-checked decoder.
//! Decoding never panics: every read checks the remaining length first.

use thiserror::Error;

/// A decoding failure; the RPC layer answers it with GARBAGE_ARGS.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XdrError {
    #[error("truncated XDR data")]
    Truncated,
    #[error("XDR length {len} exceeds the limit {max}")]
    TooLong { len: u32, max: u32 },
    #[error("invalid XDR boolean {0}")]
    BadBool(u32),
}

/// Padding needed after `len` bytes of opaque data.
pub fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

#[derive(Debug, Default, Clone)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn new() -> Self {
        Enc { buf: Vec::new() }
    }
    pub fn with_capacity(n: usize) -> Self {
        Enc {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u32(u32::from(v))
    }
    /// Fixed-length opaque (no length word).
    pub fn fixed(&mut self, data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(data);
        self.buf.extend(std::iter::repeat_n(0u8, pad(data.len())));
        self
    }
    /// Variable-length opaque or string.
    pub fn opaque(&mut self, data: &[u8]) -> &mut Self {
        self.u32(data.len() as u32);
        self.fixed(data)
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        if self.remaining() < n {
            return Err(XdrError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u32(&mut self) -> Result<u32, XdrError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, XdrError> {
        let hi = u64::from(self.u32()?);
        let lo = u64::from(self.u32()?);
        Ok(hi << 32 | lo)
    }
    pub fn bool(&mut self) -> Result<bool, XdrError> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(XdrError::BadBool(v)),
        }
    }
    pub fn fixed(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let data = self.take(n)?;
        self.take(pad(n))?;
        Ok(data)
    }
    /// Variable-length opaque of at most `max` bytes.
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        let len = self.u32()?;
        if len > max {
            return Err(XdrError::TooLong { len, max });
        }
        self.fixed(len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0u32..100) {
            let mut d = Dec::new(&bytes);
            let _ = d.u32();
            let _ = d.opaque(max);
            let _ = d.u64();
            let _ = d.bool();
            let _ = d.fixed(7);
        }

        #[test]
        fn round_trip(a in any::<u32>(), b in any::<u64>(), c in any::<bool>(),
                      o in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut e = Enc::new();
            e.u32(a).u64(b).bool(c).opaque(&o).fixed(&o);
            prop_assert_eq!(e.len() % 4, 0);
            let mut d = Dec::new(&e.buf);
            prop_assert_eq!(d.u32().unwrap(), a);
            prop_assert_eq!(d.u64().unwrap(), b);
            prop_assert_eq!(d.bool().unwrap(), c);
            prop_assert_eq!(d.opaque(40).unwrap(), &o[..]);
            prop_assert_eq!(d.fixed(o.len()).unwrap(), &o[..]);
            prop_assert_eq!(d.remaining(), 0);
        }
    }

    #[test]
    fn opaque_limit_enforced() {
        let mut e = Enc::new();
        e.opaque(&[1, 2, 3, 4, 5]);
        assert_eq!(
            Dec::new(&e.buf).opaque(4),
            Err(XdrError::TooLong { len: 5, max: 4 })
        );
        assert_eq!(Dec::new(&e.buf[..6]).opaque(8), Err(XdrError::Truncated));
    }
}
