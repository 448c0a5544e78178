//! The CPU as linrt sees it: features found, kernel paths available, and the
//! `--kernels` / `LINRT_KERNELS` choice that forces a lower path.

use anyhow::{bail, Result};
use linrt::kernels::ALL_PATHS;
use linrt::{KernelPath, Kernels};

/// The SIMD features this CPU reports that the kernels use: the runtime's own
/// detection ([`linrt::kernels::cpu_features`]), so `linrt info` cannot drift from
/// the dispatcher.
pub fn features() -> Vec<&'static str> {
    linrt::kernels::cpu_features().iter().filter(|(_, found)| *found).map(|(name, _)| *name).collect()
}

/// The path asked for with `--kernels` (or `LINRT_KERNELS`), None for automatic.
pub fn requested(flag: Option<&str>) -> Result<Option<KernelPath>> {
    let env = std::env::var("LINRT_KERNELS").ok();
    let Some(name) = flag.map(str::to_string).or(env).filter(|n| !n.is_empty() && n != "auto") else {
        return Ok(None);
    };
    let Some(path) = KernelPath::from_name(&name) else {
        let known: Vec<&str> = ALL_PATHS.iter().map(|p| p.name()).collect();
        bail!("unknown kernel path {name:?} (this build has: {})", known.join(", "));
    };
    Ok(Some(path))
}

/// The kernels a session would use with this request.
pub fn chosen(request: Option<KernelPath>) -> Result<Kernels> {
    match request {
        None => Ok(Kernels::detect()),
        Some(p) => Ok(Kernels::with_path(p)?),
    }
}

/// The model's weights as `request`'s kernel path runs them: on AVX-512 its packed
/// int8 matrices rearranged once into panels (in `mem`), elsewhere the file as it is.
pub fn prepare<'m>(
    model: &linrt::Model<'m>,
    request: Option<KernelPath>,
    mem: &'m mut Vec<u8>,
) -> Result<linrt::CpuPrepared<'m>> {
    use linrt::Backend;
    let cpu = linrt::Cpu::with_kernels(chosen(request)?);
    mem.resize(cpu.prepared_bytes(model)?, 0);
    Ok(cpu.prepare(model, mem)?)
}
