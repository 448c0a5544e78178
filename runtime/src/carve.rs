//! One caller buffer handed out front to back as typed slices and values, for
//! callers without an allocator (firmware, the C API). What is taken is never given
//! back; the buffer's owner frees it all at once.

use core::mem::{align_of, size_of};

use crate::error::Error;

/// A byte buffer being carved.
pub struct Carver<'m> {
    bytes: &'m mut [u8],
    given: usize,
}

impl<'m> Carver<'m> {
    pub fn new(bytes: &'m mut [u8]) -> Carver<'m> {
        let given = bytes.len();
        Carver { bytes, given }
    }

    /// Bytes not yet handed out.
    pub fn free(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes handed out so far, alignment padding included.
    pub fn used(&self) -> usize {
        self.given - self.bytes.len()
    }

    /// The next `n · size_of::<T>()` bytes at `T`'s alignment.
    fn take<T>(&mut self, n: usize) -> Result<*mut T, Error> {
        let addr = self.bytes.as_ptr() as usize;
        let pad = addr.next_multiple_of(align_of::<T>()) - addr;
        let needed = n.checked_mul(size_of::<T>()).and_then(|b| b.checked_add(pad)).ok_or(Error::SizeOverflow)?;
        if needed > self.bytes.len() {
            return Err(Error::ArenaTooSmall { needed: self.used() + needed, given: self.given });
        }
        let (head, tail) = core::mem::take(&mut self.bytes).split_at_mut(needed);
        self.bytes = tail;
        Ok(head[pad..].as_mut_ptr() as *mut T)
    }

    /// `n` values of `T`, each `T::default()`.
    pub fn slice<T: Default>(&mut self, n: usize) -> Result<&'m mut [T], Error> {
        let ptr = self.take::<T>(n)?;
        for i in 0..n {
            // SAFETY: `take` returned n · size_of::<T>() bytes from ptr, aligned for T,
            // that no other slice shares.
            unsafe { ptr.add(i).write(T::default()) };
        }
        // SAFETY: the n values were just written; the bytes left the buffer for good.
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr, n) })
    }

    /// `value`, moved into the buffer. It is never dropped: only types whose drop
    /// does nothing belong here (the runtime's own never own resources).
    pub fn put<T>(&mut self, value: T) -> Result<&'m mut T, Error> {
        let ptr = self.take::<T>(1)?;
        // SAFETY: as in `slice`, for one value.
        unsafe {
            ptr.write(value);
            Ok(&mut *ptr)
        }
    }
}

/// The bytes a sequence of [`Carver`] calls needs from a buffer of any alignment:
/// each request's size plus its worst-case padding.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Budget(usize);

impl Budget {
    pub fn new() -> Budget {
        Budget(0)
    }

    /// Room for `n` values of `T`.
    pub fn slice<T>(self, n: usize) -> Result<Budget, Error> {
        n.checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(align_of::<T>() - 1))
            .and_then(|b| b.checked_add(self.0))
            .map(Budget)
            .ok_or(Error::SizeOverflow)
    }

    /// Room for one `T`.
    pub fn value<T>(self) -> Result<Budget, Error> {
        self.slice::<T>(1)
    }

    pub fn bytes(self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carves_aligned_slices_and_reports_what_it_lacks() {
        let mut buf = [0u8; 64];
        let mut c = Carver::new(&mut buf[1..]);
        let a = c.slice::<u8>(3).unwrap();
        assert_eq!(a, &[0, 0, 0]);
        let b = c.slice::<u32>(2).unwrap();
        assert_eq!(b.as_ptr() as usize % 4, 0);
        let v = c.put(7u64).unwrap();
        assert_eq!(*v, 7);
        let used = c.used();
        assert!(used <= Budget::new().slice::<u8>(3).unwrap().slice::<u32>(2).unwrap().value::<u64>().unwrap().bytes());
        match c.slice::<u8>(1000) {
            Err(Error::ArenaTooSmall { needed, given: 63 }) => assert_eq!(needed, used + 1000),
            other => panic!("{:?}", other.map(|s| s.len())),
        }
        assert_eq!(Budget::new().slice::<u64>(usize::MAX), Err(Error::SizeOverflow));
    }
}
