//! Buffers whose size a model file decides, checked against this machine before
//! they are allocated: a hostile or mistaken file gets one line naming the size,
//! never an allocator abort or a swap storm.

use anyhow::{bail, Result};

/// Bytes this machine can still give a process (Linux: `MemAvailable`), or None
/// where that cannot be read (then only the allocator's own failure is caught).
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_available(&meminfo)
}

fn meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Fails when `bytes` for `what` is more than this machine has available.
pub fn check(bytes: usize, what: &str) -> Result<()> {
    check_against(bytes, what, available())
}

fn check_against(bytes: usize, what: &str, available: Option<u64>) -> Result<()> {
    if let Some(free) = available {
        if bytes as u64 > free {
            bail!("{what} needs {} but this machine has {} available", human(bytes as u64), human(free));
        }
    }
    Ok(())
}

/// `bytes` zeroed bytes for `what` (an arena), or an error line when they do not fit.
pub fn zeroed(bytes: usize, what: &str) -> Result<Vec<u8>> {
    check(bytes, what)?;
    let mut buffer = Vec::new();
    if buffer.try_reserve_exact(bytes).is_err() {
        bail!("{what} needs {}, which cannot be allocated", human(bytes as u64));
    }
    buffer.resize(bytes, 0);
    Ok(buffer)
}

/// 275.0 GB, 4.2 MB, 512 bytes: for messages.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.1} {unit}", bytes as f64 / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_available(meminfo), Some(20_000_000 * 1024));
        assert_eq!(meminfo_available("MemTotal: 5 kB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn refuses_more_than_is_available_in_one_line() {
        let error = check_against(274_883_150_016, "the session's arena", Some(20_000_000_000)).unwrap_err();
        assert_eq!(error.to_string(), "the session's arena needs 274.9 GB but this machine has 20.0 GB available");
        assert!(check_against(4096, "arena", Some(20_000_000_000)).is_ok());
        assert!(check_against(usize::MAX, "arena", None).is_ok(), "unknown: left to the allocator");
    }

    #[test]
    fn an_allocation_that_cannot_happen_is_an_error_not_an_abort() {
        if available().is_none() {
            // Without /proc/meminfo the reservation itself must fail cleanly.
            assert!(zeroed(usize::MAX / 2, "arena").is_err());
        } else {
            let error = zeroed(usize::MAX / 2, "arena").unwrap_err().to_string();
            assert!(error.starts_with("arena needs "), "{error}");
        }
        assert_eq!(zeroed(100, "arena").unwrap(), vec![0u8; 100]);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(4_200_000_000), "4.2 GB");
        assert_eq!(human(1_500), "1.5 kB");
    }
}
