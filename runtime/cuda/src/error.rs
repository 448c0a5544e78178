//! What can go wrong on the GPU side, each as one line a user can act on.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum CudaError {
    /// No `libcuda` could be loaded: no NVIDIA driver on this machine.
    NoDriver,
    /// No `libnvrtc` could be loaded: the kernels cannot be compiled.
    NoNvrtc,
    /// The driver is there but has no device at this ordinal.
    NoDevice { ordinal: usize, count: usize },
    /// A driver call failed.
    Driver { call: &'static str, message: String },
    /// NVRTC refused the kernels, or warned about them (warnings are errors here).
    Compile { arch: String, log: String },
    /// The model uses something these kernels do not do (yet).
    Unsupported(String),
    /// The runtime's own error: bad inputs, a state from another model, a pass that
    /// went non-finite.
    Runtime(linrt::Error),
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::NoDriver => write!(f, "no CUDA driver: libcuda could not be loaded (is the NVIDIA driver installed?)"),
            CudaError::NoNvrtc => write!(
                f,
                "no NVRTC: libnvrtc could not be loaded (install the CUDA toolkit's libnvrtc, or pip's nvidia-cuda-nvrtc, \
                 and put its folder on LD_LIBRARY_PATH)"
            ),
            CudaError::NoDevice { ordinal, count } => {
                write!(f, "no CUDA device {ordinal}: the driver sees {count}")
            }
            CudaError::Driver { call, message } => write!(f, "CUDA {call} failed: {message}"),
            CudaError::Compile { arch, log } => {
                let first = log.lines().find(|l| !l.trim().is_empty()).unwrap_or("(no log)");
                write!(f, "NVRTC could not compile linrt's kernels for {arch}: {}", first.trim())
            }
            CudaError::Unsupported(what) => write!(f, "not supported on CUDA yet: {what}"),
            CudaError::Runtime(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CudaError {}

impl From<linrt::Error> for CudaError {
    fn from(e: linrt::Error) -> Self {
        CudaError::Runtime(e)
    }
}

/// A driver error as the call that made it.
pub(crate) fn driver(call: &'static str) -> impl Fn(cudarc::driver::DriverError) -> CudaError {
    move |e| CudaError::Driver { call, message: format!("{e:?}") }
}
