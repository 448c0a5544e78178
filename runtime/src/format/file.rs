//! Opening a `.lrt` file from disk through memmap2 (std only): the model's tensors
//! are used in place from the page cache, never copied.

use std::fs::File;
use std::path::Path;
use std::vec::Vec;

use memmap2::Mmap;

use super::Model;
use crate::error::Error;

/// A memory-mapped `.lrt` file.
#[derive(Debug)]
pub struct ModelFile {
    map: Mmap,
}

impl ModelFile {
    /// Maps the file read-only. Validation happens in [`ModelFile::model`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error::Io(e.kind()))?;
        // SAFETY: the map is read-only and private to this process; the format is
        // validated before use, and like every mmap user we require that the file is
        // not truncated or rewritten by another process while it is mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::Io(e.kind()))?;
        Ok(ModelFile { map })
    }

    /// The raw bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Validates the file and borrows a [`Model`] from the mapping.
    pub fn model(&self) -> Result<Model<'_>, Error> {
        Model::from_bytes(&self.map)
    }
}

/// Model bytes held in memory with the alignment [`Model::from_bytes`] needs
/// (a plain `Vec<u8>` guarantees none).
#[derive(Debug, Clone)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes { words, len: bytes.len() }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }

    /// Validates the bytes and borrows a [`Model`] from them.
    pub fn model(&self) -> Result<Model<'_>, Error> {
        Model::from_bytes(self.as_bytes())
    }
}
