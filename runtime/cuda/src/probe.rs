//! Is there a GPU, and what is it? Asked before anything else touches CUDA: with
//! dynamic loading, cudarc panics on the first call into a library it cannot load,
//! so every entry point probes the library first and answers with an error instead.

use crate::error::{driver, CudaError};
use cudarc::driver::{sys, CudaContext};

/// One CUDA device as `linrt info` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// (major, minor): 7.2 Xavier, 8.7 Orin, 9.0 H100.
    pub compute_capability: (i32, i32),
    pub memory_bytes: usize,
    /// An integrated GPU shares the CPU's memory (Jetson): inputs and outputs stay in
    /// mapped host memory there instead of being copied.
    pub integrated: bool,
    pub multiprocessors: i32,
}

impl DeviceInfo {
    /// The virtual architecture NVRTC compiles for: `compute_87` on an Orin.
    pub fn arch(&self) -> String {
        format!("compute_{}{}", self.compute_capability.0, self.compute_capability.1)
    }
}

/// True when `libcuda` loads. Never panics.
pub fn driver_present() -> bool {
    // SAFETY: is_culib_present only tries to dlopen the library by its usual names.
    std::panic::catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

/// True when `libnvrtc` loads. Never panics.
pub fn nvrtc_present() -> bool {
    // SAFETY: as above, a dlopen attempt and nothing else.
    std::panic::catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

/// NVRTC's version (major, minor), or why it is not usable.
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    if !nvrtc_present() {
        return Err(CudaError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is loaded (checked above); both pointers are to live i32s.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if status != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(CudaError::Compile { arch: "-".into(), log: format!("nvrtcVersion: {status:?}") });
    }
    Ok((major, minor))
}

/// Every device the driver sees, or why there is none to see.
pub fn devices() -> Result<Vec<DeviceInfo>, CudaError> {
    if !driver_present() {
        return Err(CudaError::NoDriver);
    }
    let count = CudaContext::device_count().map_err(driver("cuInit / cuDeviceGetCount"))?;
    (0..count.max(0) as usize).map(device).collect()
}

/// The device at `ordinal`.
pub fn device(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    if !driver_present() {
        return Err(CudaError::NoDriver);
    }
    let count = CudaContext::device_count().map_err(driver("cuInit / cuDeviceGetCount"))?.max(0) as usize;
    if ordinal >= count {
        return Err(CudaError::NoDevice { ordinal, count });
    }
    let ctx = CudaContext::new(ordinal).map_err(driver("cuDevicePrimaryCtxRetain"))?;
    info(&ctx)
}

/// What `ctx`'s device is.
pub(crate) fn info(ctx: &CudaContext) -> Result<DeviceInfo, CudaError> {
    use sys::CUdevice_attribute as A;
    let attribute = |a| ctx.attribute(a).map_err(driver("cuDeviceGetAttribute"));
    let memory_bytes = {
        let mut bytes = 0usize;
        // SAFETY: the context's device handle is valid while ctx lives; bytes is a live usize.
        let status = unsafe { sys::cuDeviceTotalMem_v2(&mut bytes, ctx.cu_device()) };
        if status != sys::CUresult::CUDA_SUCCESS {
            return Err(CudaError::Driver { call: "cuDeviceTotalMem", message: format!("{status:?}") });
        }
        bytes
    };
    Ok(DeviceInfo {
        ordinal: ctx.ordinal(),
        name: ctx.name().map_err(driver("cuDeviceGetName"))?,
        compute_capability: ctx.compute_capability().map_err(driver("cuDeviceGetAttribute"))?,
        memory_bytes,
        integrated: attribute(A::CU_DEVICE_ATTRIBUTE_INTEGRATED)? != 0,
        multiprocessors: attribute(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a driver (here, CI) every entry point says so; with one, the list is
    /// the driver's.
    #[test]
    fn probe_answers_without_panicking() {
        match devices() {
            Err(CudaError::NoDriver) => {
                assert!(!driver_present());
                assert_eq!(device(0), Err(CudaError::NoDriver));
                eprintln!("no CUDA driver here: probed and reported cleanly");
            }
            Ok(list) => {
                for d in &list {
                    assert!(d.compute_capability.0 >= 3, "{d:?}");
                }
                assert!(matches!(device(list.len()), Err(CudaError::NoDevice { .. })));
            }
            Err(e) => panic!("unexpected probe error: {e}"),
        }
    }
}
