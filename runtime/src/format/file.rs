//! Opening a `.lrt` file from disk through memmap2 (std only): the model's tensors
//! are used in place from the page cache, never copied.

use std::fs::File;
use std::path::Path;

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
