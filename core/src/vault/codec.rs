//! The compact binary encoding of every record the vault stores.
//!
//! Records are written field by field in a fixed order: integers big-endian, byte strings and
//! UTF-8 strings prefixed by a `u32` length. The first byte of every record is its encoding
//! version, so a record layout can change without a migration of the whole store. The same
//! encoding is what the audit chain hashes (see `docs/VAULT.md`), which is why it is written
//! by hand rather than derived: the bytes must not depend on a serializer's version.

/// A record could not be decoded: the store holds bytes this code did not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodecError;

pub(crate) type Result<T> = std::result::Result<T, CodecError>;

/// Appends fields to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn with_version(version: u8) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.push(version);
        Enc(buf)
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    pub(crate) fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("records are far smaller than 4 GiB");
        self.u32(len);
        self.fixed(v)
    }
    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(v) => self.u8(1).u64(v),
        }
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads fields back in the order they were written.
#[derive(Debug)]
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    /// Starts decoding and checks the encoding version byte.
    pub(crate) fn new(buf: &'a [u8], version: u8) -> Result<Self> {
        let (d, _) = Dec::any_of(buf, &[version])?;
        Ok(d)
    }
    /// Starts decoding a record written in one of `versions`, and says which.
    pub(crate) fn any_of(buf: &'a [u8], versions: &[u8]) -> Result<(Self, u8)> {
        let mut d = Dec { buf };
        let version = d.u8()?;
        if !versions.contains(&version) {
            return Err(CodecError);
        }
        Ok((d, version))
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(CodecError);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError),
        }
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    pub(crate) fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| CodecError)
    }
    pub(crate) fn opt_u64(&mut self) -> Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(CodecError),
        }
    }
    /// Fails unless every byte was consumed (no trailing garbage is accepted).
    pub(crate) fn end(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError)
        }
    }
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses hex of exactly `N` bytes (either case).
pub(crate) fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let mut e = Enc::with_version(1);
        e.u8(7)
            .u32(9)
            .u64(u64::MAX)
            .bool(true)
            .str("héllo")
            .opt_u64(None)
            .opt_u64(Some(3));
        let buf = e.finish();
        let mut d = Dec::new(&buf, 1).unwrap();
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.u32().unwrap(), 9);
        assert_eq!(d.u64().unwrap(), u64::MAX);
        assert!(d.bool().unwrap());
        assert_eq!(d.string().unwrap(), "héllo");
        assert_eq!(d.opt_u64().unwrap(), None);
        assert_eq!(d.opt_u64().unwrap(), Some(3));
        d.end().unwrap();
        let mut longer = buf.clone();
        longer.push(0);
        let mut d = Dec::new(&longer, 1).unwrap();
        for _ in 0..7 {
            let _ = d.u8();
        }
        assert!(Dec::new(&buf, 2).is_err());
    }

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex::<4>("0001ABff"), Some(b));
        assert_eq!(from_hex::<4>("0001abf"), None);
        assert_eq!(from_hex::<4>("0001abfg"), None);
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(to_hex(&all), expected);
        assert_eq!(from_hex::<256>(&expected).map(Vec::from), Some(all));
    }
}
