//! linrt's kernels compile to PTX, through the backend's own `compile`, for every
//! architecture we ship to: Jetson Xavier (compute_72), Jetson Orin (compute_87) and
//! H100 (compute_90). NVRTC needs no GPU, so this runs here and in CI (which installs
//! pip's nvidia-cuda-nvrtc and sets LINRT_REQUIRE_NVRTC=1, so a missing library
//! fails instead of skipping). A warning fails like an error.

use linrt_cuda::compile::{compile, source, CI_ARCHS, KERNEL_NAMES};
use linrt_cuda::probe::nvrtc_present;
use linrt_cuda::CudaError;

/// False (with a note) when NVRTC is not here and nobody asked for it.
fn nvrtc_or_skip() -> bool {
    if nvrtc_present() {
        return true;
    }
    if std::env::var_os("LINRT_REQUIRE_NVRTC").is_some() {
        panic!("LINRT_REQUIRE_NVRTC is set but libnvrtc could not be loaded (LD_LIBRARY_PATH?)");
    }
    eprintln!("SKIPPED: no libnvrtc on this machine (set LINRT_REQUIRE_NVRTC=1 to make this a failure)");
    false
}

#[test]
fn every_kernel_compiles_for_every_shipped_architecture() {
    if !nvrtc_or_skip() {
        return;
    }
    eprintln!("NVRTC {:?}", linrt_cuda::probe::nvrtc_version().unwrap());
    for arch in CI_ARCHS {
        let ptx = compile(&source(), arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        let target = format!(".target sm_{}", &arch["compute_".len()..]);
        assert!(ptx.contains(&target), "{arch}: PTX for another target");
        for name in KERNEL_NAMES {
            assert!(ptx.contains(&format!(".entry {name}(")), "{arch}: no entry for {name}");
        }
        eprintln!("{arch}: {} kernels, {} bytes of PTX", KERNEL_NAMES.len(), ptx.len());
    }
}

#[test]
fn errors_and_warnings_fail_with_their_first_line() {
    if !nvrtc_or_skip() {
        return;
    }
    let e = compile("extern \"C\" __global__ void broken() { undeclared = 1; }", "compute_87").unwrap_err();
    let CudaError::Compile { ref log, .. } = e else { panic!("{e:?}") };
    assert!(log.contains("undeclared"), "{log}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
    // An unused variable is only a warning to NVRTC; for linrt's kernels it is an error.
    let e = compile("extern \"C\" __global__ void unused() { int x; }", "compute_87").unwrap_err();
    assert!(e.to_string().contains("warning"), "{e}");
}
