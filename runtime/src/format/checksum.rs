//! CRC-32 (IEEE 802.3, the zlib/PNG polynomial) over the whole file, computed with
//! the header's checksum field read as zero.

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// Incremental CRC-32.
#[derive(Clone, Copy)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(0xFFFF_FFFF)
    }
}

impl Crc32 {
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c = TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    pub fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// Offset of the checksum field inside the header.
pub const CHECKSUM_OFFSET: usize = 60;

/// The checksum of a whole `.lrt` image (the stored checksum field counts as zero).
pub fn file_checksum(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::default();
    let split = CHECKSUM_OFFSET.min(bytes.len());
    crc.update(&bytes[..split]);
    if bytes.len() >= CHECKSUM_OFFSET + 4 {
        crc.update(&[0; 4]);
        crc.update(&bytes[CHECKSUM_OFFSET + 4..]);
    }
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        let mut c = Crc32::default();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }
}
