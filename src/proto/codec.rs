//! Bounds-checked, zero-copy reader and an appending writer for the wire types of protocol.md §2:
//! big-endian `u8`/`u16`/`u32`, `str`/`bytes` (`u32` length + bytes), `idstr`, `list<T>`.
//!
//! The [`Reader`] never panics and never allocates from an unchecked peer value (P-7, P-8).
//! [`Wire`] ties a Rust type to its wire encoding; PDU bodies and records implement it (mostly
//! through the `wire_struct!` macro of `proto/mod.rs`).

use super::{Id, ProtoError};

/// Reads wire values from the front of a borrowed body; every value borrows from the input.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    /// P-6 for client requests: a field that starts exactly at the end of the body reads as its
    /// zero value (`u32` 0, empty `str`, empty list) instead of failing.
    zero_fill: bool,
    /// Some field was zero-filled.
    filled: bool,
}

impl<'a> Reader<'a> {
    /// A strict reader over `buf` (normally one PDU body): every field must be present.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            zero_fill: false,
            filled: false,
        }
    }

    /// A reader for a client request (P-6): once the body has ended cleanly at a field
    /// boundary, the missing trailing fields read as zero. A field cut in the middle, a length or
    /// count past the end and a list item that is not there are still errors.
    pub fn zero_filling(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            zero_fill: true,
            ..Reader::new(buf)
        }
    }

    /// Whether a missing trailing field was read as zero (counted `short_requests`).
    pub fn zero_filled(&self) -> bool {
        self.filled
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` raw bytes (no length prefix).
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let (head, tail) = self.buf.split_at_checked(n).ok_or(ProtoError::Truncated)?;
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        if self.zero_fill && self.buf.is_empty() {
            // Every wire value starts with an integer (a `str` with its length, a list with
            // its count), so this one place zero-fills every field type.
            self.filled = true;
            return Ok(out);
        }
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A `str` or `bytes` field: `u32` length, then that many bytes (P-7: a length beyond the
    /// remaining body is [`ProtoError::BadStrLen`]).
    pub fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.u32()?;
        let n = usize::try_from(len).map_err(|_| ProtoError::BadStrLen(len))?;
        if n > self.buf.len() {
            return Err(ProtoError::BadStrLen(len));
        }
        self.take(n)
    }

    /// An `idstr` field, always returned as [`Id::Raw`] (canonical or not, P-20).
    pub fn id(&mut self) -> Result<Id<'a>, ProtoError> {
        Ok(Id::Raw(self.bytes()?))
    }

    /// A `list<T>`: `u32` count, then the items read by `f`. P-8: the count is checked against
    /// the remaining bytes with `min_item` (the smallest encoding of one item, at least 1) before
    /// anything is allocated.
    pub fn list<T>(
        &mut self,
        min_item: usize,
        mut f: impl FnMut(&mut Reader<'a>) -> Result<T, ProtoError>,
    ) -> Result<Vec<T>, ProtoError> {
        let count = self.u32()?;
        let n = usize::try_from(count).map_err(|_| ProtoError::BadCount)?;
        let need = n.checked_mul(min_item.max(1)).ok_or(ProtoError::BadCount)?;
        if need > self.buf.len() {
            return Err(ProtoError::BadCount);
        }
        let mut out = Vec::with_capacity(n);
        // The count promised these items: inside the list nothing is zero-filled (P-6, P-8).
        let zero_fill = std::mem::replace(&mut self.zero_fill, false);
        let items = (0..n).try_for_each(|_| {
            out.push(f(self)?);
            Ok(())
        });
        self.zero_fill = zero_fill;
        items.map(|()| out)
    }

    /// End of the body: P-6, trailing bytes are an error.
    pub fn finish(self) -> Result<(), ProtoError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Trailing)
        }
    }
}

/// Appends wire values to a byte vector.
#[derive(Debug)]
pub struct Writer<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> Writer<'b> {
    pub fn new(out: &'b mut Vec<u8>) -> Writer<'b> {
        Writer { out }
    }

    /// Bytes in the underlying vector (including what was there before this writer).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// Raw bytes, no length prefix.
    pub fn raw(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// A `str`/`bytes` field. (A slice longer than `u32::MAX` cannot occur in a PDU; its length
    /// would be saturated, never a panic.)
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.out.extend_from_slice(b);
    }

    /// An `idstr`: `Raw` bytes as they are, `Num` in canonical decimal (P-21).
    pub fn id(&mut self, id: &Id<'_>) {
        match *id {
            Id::Raw(b) => self.bytes(b),
            Id::Num(n) => {
                let mut digits = [0u8; 10];
                let mut len = 0usize;
                let mut v = n;
                // Least significant digit first, then reversed.
                for slot in digits.iter_mut() {
                    *slot = b'0' + (v % 10) as u8;
                    len += 1;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                let used = digits.get(..len).unwrap_or(&[]);
                self.u32(len as u32);
                self.out.extend(used.iter().rev());
            }
        }
    }

    /// A `list<T>` with `f` writing each item.
    pub fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Writer<'b>, &T)) {
        self.u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
        for item in items {
            f(self, item);
        }
    }

    /// A `list<idstr>`.
    pub fn ids(&mut self, ids: &[Id<'_>]) {
        self.list(ids, |w, id| w.id(id));
    }
}

/// Reads the conditional tail of a body ("if result = 0: …"): present iff `result == 0`.
pub fn tail<'a, T: Wire<'a>>(result: u32, r: &mut Reader<'a>) -> Result<Option<T>, ProtoError> {
    if result == 0 {
        T::read(r).map(Some)
    } else {
        Ok(None)
    }
}

/// A type with a wire encoding. `MIN` is the size of its smallest encoding (used for P-8).
pub trait Wire<'a>: Sized {
    /// Smallest encoded size in bytes: 1/2/4 for integers, 4 for `str`/`idstr`/lists, the sum of
    /// the fields for a record.
    const MIN: usize;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError>;
    fn write(&self, w: &mut Writer<'_>);
}

impl<'a> Wire<'a> for u8 {
    const MIN: usize = 1;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        r.u8()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u8(*self)
    }
}

impl<'a> Wire<'a> for u16 {
    const MIN: usize = 2;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        r.u16()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u16(*self)
    }
}

impl<'a> Wire<'a> for u32 {
    const MIN: usize = 4;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        r.u32()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(*self)
    }
}

/// `str` and `bytes`.
impl<'a> Wire<'a> for &'a [u8] {
    const MIN: usize = 4;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        r.bytes()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.bytes(self)
    }
}

/// `idstr`.
impl<'a> Wire<'a> for Id<'a> {
    const MIN: usize = 4;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        r.id()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.id(self)
    }
}

/// `list<T>`.
impl<'a, T: Wire<'a>> Wire<'a> for Vec<T> {
    const MIN: usize = 4;
    fn read(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        r.list(T::MIN, T::read)
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(u32::try_from(self.len()).unwrap_or(u32::MAX));
        for item in self {
            item.write(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_big_endian() {
        let mut v = Vec::new();
        let mut w = Writer::new(&mut v);
        w.u8(1);
        w.u16(0x0203);
        w.u32(0x0405_0607);
        assert_eq!(v, [1, 2, 3, 4, 5, 6, 7]);
        let mut r = Reader::new(&v);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0203));
        assert_eq!(r.u32(), Ok(0x0405_0607));
        assert_eq!(r.u8(), Err(ProtoError::Truncated));
        r.finish().unwrap();
    }

    #[test]
    fn short_integer_is_truncated() {
        assert_eq!(Reader::new(&[0, 0, 0]).u32(), Err(ProtoError::Truncated));
        assert_eq!(Reader::new(&[0]).u16(), Err(ProtoError::Truncated));
        assert_eq!(Reader::new(&[]).u8(), Err(ProtoError::Truncated));
    }

    #[test]
    fn zero_filling_only_at_a_clean_end() {
        // P-6: fields that start at the end of a request body read as zero ...
        let mut r = Reader::zero_filling(&[0, 0, 0, 7]);
        assert_eq!(r.u32(), Ok(7));
        assert!(!r.zero_filled());
        assert_eq!(r.u32(), Ok(0));
        assert_eq!(r.u8(), Ok(0));
        assert_eq!(r.bytes(), Ok(&b""[..]));
        assert_eq!(r.list(4, |r| r.u32()), Ok(vec![]));
        assert!(r.zero_filled());
        r.finish().unwrap();
        // ... but a field cut in the middle, a length or a count past the end, and a list item
        // the count promised stay errors.
        assert_eq!(
            Reader::zero_filling(&[0, 0]).u32(),
            Err(ProtoError::Truncated)
        );
        assert_eq!(
            Reader::zero_filling(&[0, 0, 0, 3, b'h']).bytes(),
            Err(ProtoError::BadStrLen(3))
        );
        assert_eq!(
            Reader::zero_filling(&[0, 0, 0, 2, 0, 0, 0, 0]).list(4, |r| r.u32()),
            Err(ProtoError::BadCount)
        );
        // Item two of two: 4 bytes of count check pass (2 x min 2), the second item is missing.
        let mut r = Reader::zero_filling(&[0, 0, 0, 2, 0, 0, 0, 1, b'x']);
        assert_eq!(r.list(2, |r| r.bytes()), Err(ProtoError::Truncated));
        // A strict reader never zero-fills.
        assert_eq!(Reader::new(&[]).u32(), Err(ProtoError::Truncated));
    }

    #[test]
    fn bytes_and_lengths() {
        let mut r = Reader::new(&[0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0]);
        assert_eq!(r.bytes(), Ok(&b"hi"[..]));
        assert_eq!(r.bytes(), Ok(&b""[..]));
        r.finish().unwrap();
        assert_eq!(
            Reader::new(&[0, 0, 0, 3, b'h', b'i']).bytes(),
            Err(ProtoError::BadStrLen(3))
        );
        assert_eq!(
            Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF]).bytes(),
            Err(ProtoError::BadStrLen(u32::MAX))
        );
    }

    #[test]
    fn list_count_checked_before_allocation() {
        let mut r = Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
        assert_eq!(r.list(4, |r| r.u32()), Err(ProtoError::BadCount));
        // count 2 of u32 with only 7 bytes left
        let mut r = Reader::new(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(r.list(4, |r| r.u32()), Err(ProtoError::BadCount));
        let mut r = Reader::new(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(r.list(4, |r| r.u32()), Ok(vec![1, 2]));
        // min_item 0 is treated as 1
        let mut r = Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(r.list(0, |r| r.u8()), Err(ProtoError::BadCount));
    }

    #[test]
    fn trailing() {
        assert_eq!(Reader::new(&[0]).finish(), Err(ProtoError::Trailing));
        Reader::new(&[]).finish().unwrap();
    }

    #[test]
    fn id_num_canonical() {
        for (n, s) in [
            (1u32, "1"),
            (9, "9"),
            (10, "10"),
            (10035, "10035"),
            (u32::MAX, "4294967295"),
            (0, "0"),
        ] {
            let mut v = Vec::new();
            Writer::new(&mut v).id(&Id::Num(n));
            let mut r = Reader::new(&v);
            assert_eq!(r.id(), Ok(Id::Raw(s.as_bytes())), "{n}");
        }
        let mut v = Vec::new();
        Writer::new(&mut v).id(&Id::Raw(b"007"));
        assert_eq!(v, [0, 0, 0, 3, b'0', b'0', b'7']);
    }

    #[test]
    fn vec_of_ids() {
        let ids = vec![Id::Num(1), Id::Raw(b"22")];
        let mut v = Vec::new();
        ids.write(&mut Writer::new(&mut v));
        assert_eq!(v, [0, 0, 0, 2, 0, 0, 0, 1, b'1', 0, 0, 0, 2, b'2', b'2']);
        let mut r = Reader::new(&v);
        let back: Vec<Id<'_>> = Wire::read(&mut r).unwrap();
        assert_eq!(back, vec![Id::Raw(b"1"), Id::Raw(b"22")]);
    }
}
