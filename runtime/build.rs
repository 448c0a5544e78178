//! Which optional kernel paths the target can run, decided by its name where the
//! target features are not visible to stable Rust's cfg (32-bit ARM's DSP extension).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(linrt_arm_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    // SMLAD and SXTB16 (the DSP extension): every ARMv7E-M core (Cortex-M4/M7, the
    // thumbv7em targets) and every ARMv7-A (armv7-*, thumbv7neon-*). Not ARMv6-M/v7-M
    // (M0/M3), and only optionally ARMv8-M Mainline (M33), which stay scalar.
    if target.starts_with("thumbv7em") || target.starts_with("armv7") || target.starts_with("thumbv7neon") {
        println!("cargo::rustc-cfg=linrt_arm_dsp");
    }
}
