//! CPU backends of the fast kernel, chosen once at run time.
//!
//! The inner loop is one function body (the private `row` module) written so that the compiler turns it
//! into wide SIMD code; each backend compiles that same body with its own instruction set
//! enabled (`#[target_feature]`), and [`Backend::detect`] picks the widest one the CPU has.
//! Keeping one body means every backend computes the same integers by construction, and the
//! tests still check each one against the scalar reference.

use std::fmt;
use std::sync::OnceLock;

/// One way of running the fast kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Plain code for the target's baseline (SSE2 on x86-64, NEON on aarch64), always supported.
    Baseline,
    /// x86-64 with AVX2 (256-bit vectors).
    Avx2,
    /// x86-64 with AVX-512 F and BW (512-bit vectors).
    Avx512,
}

impl Backend {
    /// Every backend this build knows, supported or not, narrowest first.
    pub const ALL: [Backend; 3] = [Backend::Baseline, Backend::Avx2, Backend::Avx512];

    /// Whether the running CPU can execute this backend.
    pub fn is_supported(self) -> bool {
        match self {
            Backend::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Avx512 => false,
        }
    }

    /// The widest supported backend, detected once per process.
    ///
    /// `DSOBEL_KERNEL_BACKEND=baseline|avx2|avx512` forces a choice (an unsupported one falls
    /// back to detection), which is how the benchmarks and a suspicious user compare them.
    pub fn detect() -> Backend {
        static CHOSEN: OnceLock<Backend> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let forced = std::env::var("DSOBEL_KERNEL_BACKEND")
                .ok()
                .and_then(|v| Backend::from_name(&v))
                .filter(|b| b.is_supported());
            forced.unwrap_or_else(|| {
                Backend::ALL.into_iter().rev().find(|b| b.is_supported()).unwrap_or(Backend::Baseline)
            })
        })
    }

    /// The backend's short name (`baseline`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Baseline => {
                if cfg!(target_arch = "aarch64") {
                    "neon"
                } else if cfg!(target_arch = "x86_64") {
                    "sse2"
                } else {
                    "baseline"
                }
            }
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
        }
    }

    /// Parses a name as printed by [`Backend::name`] (also `baseline`).
    pub fn from_name(name: &str) -> Option<Backend> {
        match name.trim().to_ascii_lowercase().as_str() {
            "baseline" | "sse2" | "neon" | "scalar" => Some(Backend::Baseline),
            "avx2" => Some(Backend::Avx2),
            "avx512" => Some(Backend::Avx512),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
