//! Which SIMD code the bundled codecs run on this machine, for `vidcast --version` and
//! benchmarks.
//!
//! OpenH264's x86 assembly is built only when `nasm` is on the PATH at build time:
//! openh264-sys2 (0.9.x, build.rs `try_compile_nasm`) runs it through nasm-rs and quietly
//! builds the portable C paths when that fails (or when `OPENH264_NO_ASM` is set). It says so
//! only in its build log, so we ask the library itself: `WelsCPUFeatureDetect` is compiled
//! with `X86_ASM` (or NEON) and reports the CPU's features, and without them returns 0.

use std::fmt;

/// How the bundled OpenH264 encodes and decodes here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H264Simd {
    /// Built with its x86 assembly; the CPU features it found and will use.
    X86Assembly {
        /// Feature names, e.g. "SSE2", "AVX".
        features: Vec<&'static str>,
    },
    /// Built with its ARM NEON code (aarch64 and arm need only the C compiler for it).
    Neon,
    /// Portable C only: on x86 this build had no `nasm`.
    PortableC,
}

impl fmt::Display for H264Simd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H264Simd::X86Assembly { features } => {
                write!(f, "x86 assembly ({})", features.join(", "))
            }
            H264Simd::Neon => f.write_str("ARM NEON"),
            H264Simd::PortableC if cfg!(any(target_arch = "x86", target_arch = "x86_64")) => {
                f.write_str("portable C, no assembly (built without nasm)")
            }
            H264Simd::PortableC => f.write_str("portable C, no assembly"),
        }
    }
}

/// OpenH264's x86 feature flags (`codec/common/inc/cpu_core.h`) and their names.
const X86_FEATURES: [(u32, &str); 7] = [
    (0x0000_0008, "SSE2"),
    (0x0000_0010, "SSE3"),
    (0x0000_0200, "SSSE3"),
    (0x0000_0020, "SSE4.1"),
    (0x0000_0400, "SSE4.2"),
    (0x0000_0800, "AVX"),
    (0x0004_0000, "AVX2"),
];
/// OpenH264's flag for NEON on ARM.
const NEON: u32 = 0x0000_0004;

extern "C" {
    /// In openh264-sys2's static `openh264_common` (`codec/common/src/cpu.cpp`, C linkage):
    /// the CPU features the library's SIMD code may use; 0 when built without any.
    fn WelsCPUFeatureDetect(number_of_logic_processors: *mut i32) -> u32;
}

/// What the bundled OpenH264 was built with, and uses on this CPU.
pub fn h264_simd() -> H264Simd {
    let mut processors = 0i32;
    // SAFETY: the function only runs `cpuid` (or reads build-time constants) and writes one
    // i32 through the pointer, which points at a live local.
    let flags = unsafe { WelsCPUFeatureDetect(&mut processors) };
    if flags == 0 {
        return H264Simd::PortableC;
    }
    if cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
        let features = X86_FEATURES
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|&(_, name)| name)
            .collect();
        H264Simd::X86Assembly { features }
    } else if cfg!(any(target_arch = "arm", target_arch = "aarch64")) && flags & NEON != 0 {
        H264Simd::Neon
    } else {
        H264Simd::PortableC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_matches_how_this_build_was_made() {
        let simd = h264_simd();
        let text = simd.to_string();
        if cfg!(target_arch = "x86_64") {
            // The same test runs in builds with and without nasm: it checks that the
            // answer is one of the two and reads right, not which one.
            match &simd {
                H264Simd::X86Assembly { features } => {
                    assert!(features.contains(&"SSE2"), "{features:?}");
                    assert!(text.starts_with("x86 assembly (SSE2"), "{text}");
                }
                H264Simd::PortableC => assert!(text.contains("without nasm"), "{text}"),
                H264Simd::Neon => panic!("NEON on x86_64"),
            }
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(simd, H264Simd::Neon);
        }
    }
}
