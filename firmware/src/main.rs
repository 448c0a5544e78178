//! Voice commands on a Cortex-M4F from flash: the int8 speech model and the sample's
//! audio are compiled in, every buffer is static, and the final transcripts go out
//! through semihosting. `cargo run -p linrt-firmware --release --target
//! thumbv7em-none-eabihf` boots it under `qemu-system-arm -M mps2-an386` (the runner
//! in .cargo/config.toml); on the host the same program prints what the host
//! computes, for comparison line by line.

#![cfg_attr(target_os = "none", no_std, no_main)]

mod pipeline;
mod pool;

use core::fmt;

/// The report after the transcripts: the same lines on the board and on the host.
fn report(summary: &pipeline::Summary, print: &mut dyn FnMut(fmt::Arguments)) {
    print(format_args!("finals {}", summary.finals));
    print(format_args!("steps {}", summary.steps));
    print(format_args!("logits checksum {:016x}", summary.logits_checksum));
    print(format_args!("model bytes {}", summary.model_bytes));
    print(format_args!(
        "static pool used {} bytes (BufferedRecognizer::bytes bound {})",
        summary.pool_used, summary.pool_bound
    ));
}

#[cfg(target_os = "none")]
mod board {
    use cortex_m_rt::entry;
    use cortex_m_semihosting::{debug, hprintln};

    extern "C" {
        /// The end of .bss and .uninit, where cortex-m-rt's stack may grow down to.
        static mut __sheap: u32;
        /// The top of RAM, where the stack starts.
        static _stack_start: u32;
    }

    /// What an untouched stack word holds.
    const PAINT: u32 = 0xC0FF_EE00;

    #[entry]
    fn main() -> ! {
        let (low, high) = stack_bounds();
        // Paint the unused stack below this frame (less a margin), to find after the
        // run how deep it went.
        let sp = cortex_m::register::msp::read() as usize - 64;
        let mut p = low;
        while p < sp {
            // SAFETY: [low, sp) is RAM between the statics and this frame: unused stack.
            unsafe { (p as *mut u32).write_volatile(PAINT) };
            p += 4;
        }
        hprintln!("linrt firmware: recognizing the sample from flash");
        let mut print = |args: core::fmt::Arguments| hprintln!("{}", args);
        let clock = Clock::start();
        let result = crate::pipeline::run(&mut print);
        let ticks = clock.ticks();
        let code = match result {
            Ok(summary) => {
                crate::report(&summary, &mut print);
                // Under `qemu-system-arm -icount shift=0` every instruction advances the
                // virtual clock 1 ns, and SysTick counts the board's 25 MHz: 40
                // instructions per tick. (Without -icount the figure is host time.)
                let instructions = ticks * 40;
                hprintln!(
                    "instructions {} ({} per streamed step, state rebuilds included)",
                    instructions,
                    instructions / summary.steps.max(1) as u64
                );
                let mut deepest = low;
                // SAFETY: reads of the painted RAM only.
                while deepest < sp && unsafe { (deepest as *const u32).read_volatile() } == PAINT {
                    deepest += 4;
                }
                hprintln!("stack high-water {} bytes", high - deepest);
                debug::EXIT_SUCCESS
            }
            Err(e) => {
                hprintln!("error: {}", e);
                debug::EXIT_FAILURE
            }
        };
        debug::exit(code);
        loop {
            cortex_m::asm::wfi();
        }
    }

    /// SysTick wraps counted by its interrupt: a 24-bit counter extended to 64 bits.
    static WRAPS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

    #[cortex_m_rt::exception]
    fn SysTick() {
        WRAPS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// Core clock ticks since `start`.
    struct Clock;

    impl Clock {
        fn start() -> Clock {
            let mut p = cortex_m::Peripherals::take().expect("taken once, at boot");
            p.SYST.set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
            p.SYST.set_reload(0x00FF_FFFF);
            p.SYST.clear_current();
            p.SYST.enable_interrupt();
            p.SYST.enable_counter();
            Clock
        }

        fn ticks(&self) -> u64 {
            loop {
                let before = WRAPS.load(core::sync::atomic::Ordering::Relaxed);
                let current = cortex_m::peripheral::SYST::get_current();
                if WRAPS.load(core::sync::atomic::Ordering::Relaxed) == before {
                    return before as u64 * (1 << 24) + (0x00FF_FFFF - current) as u64;
                }
            }
        }
    }

    /// [lowest address the stack may reach, its top).
    fn stack_bounds() -> (usize, usize) {
        // Only the symbols' addresses are taken, never their values.
        (core::ptr::addr_of_mut!(__sheap) as usize, core::ptr::addr_of!(_stack_start) as usize)
    }

    /// A fault ends the run with its address, rather than hanging the emulator.
    // SAFETY: cortex-m-rt requires the handler to be an `unsafe fn`; it only reads the
    // frame the hardware stacked and exits through semihosting.
    #[cortex_m_rt::exception]
    unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
        hprintln!("hard fault at pc {:#010x} (lr {:#010x})", frame.pc(), frame.lr());
        debug::exit(debug::EXIT_FAILURE);
        loop {
            cortex_m::asm::wfi();
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        hprintln!("panic: {}", info);
        debug::exit(debug::EXIT_FAILURE);
        loop {
            cortex_m::asm::wfi();
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    let mut print = |args: fmt::Arguments| println!("{args}");
    match pipeline::run(&mut print) {
        Ok(summary) => report(&summary, &mut print),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
