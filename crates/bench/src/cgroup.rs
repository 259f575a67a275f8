//! One machine standing in for several small ones: each process in a CPU control group of its
//! own, capped at a fraction of a core, and the CPU time each process spent.
//!
//! Linux only, and creating a group needs root. Both hierarchies are handled: cgroup v2
//! (`cpu.max` under `/sys/fs/cgroup`) and v1 (`cpu.cfs_quota_us` under `/sys/fs/cgroup/cpu`).
//! A group is removed when dropped (after its processes have exited).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The scheduler period of every group, in microseconds.
const PERIOD_US: u64 = 100_000;

/// A CPU control group capped at some cores.
#[derive(Debug)]
pub struct CpuGroup {
    dir: PathBuf,
}

impl CpuGroup {
    /// Creates the group `name`, capped at `cores` (0.25 = a quarter of one core).
    pub fn create(name: &str, cores: f64) -> Result<CpuGroup> {
        if !(cores > 0.0 && cores <= 1024.0) {
            bail!("a CPU cap must be more than 0 and at most 1024 cores, not {cores}");
        }
        let quota = ((cores * PERIOD_US as f64).round() as u64).max(1000);
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let dir =
            if v2 { PathBuf::from("/sys/fs/cgroup") } else { PathBuf::from("/sys/fs/cgroup/cpu") }.join(name);
        if v2 {
            // The cpu controller must be enabled for the children of the root (it usually is).
            let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
        }
        std::fs::create_dir(&dir).with_context(|| {
            format!("cannot create the CPU control group {} (this needs Linux and root)", dir.display())
        })?;
        let group = CpuGroup { dir };
        if v2 {
            group.write("cpu.max", &format!("{quota} {PERIOD_US}"))?;
        } else {
            group.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
            group.write("cpu.cfs_quota_us", &quota.to_string())?;
        }
        Ok(group)
    }

    /// Moves the process `pid` (all its threads, and the ones it starts later) into the group.
    pub fn add(&self, pid: u32) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).with_context(|| format!("cannot write {value} to {}", path.display()))
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        // Succeeds once the group's processes have exited; a leftover empty group is harmless.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// User plus system CPU time of a running process so far, in seconds (`None` once it is gone,
/// or off Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after its end.
    // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / clock_ticks())
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on every common Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_spent_some_cpu() {
        let before = cpu_seconds(std::process::id()).expect("Linux /proc");
        let started = std::time::Instant::now();
        // Spin until the clock (10 ms ticks) shows it, for at most a few seconds.
        let mut spin = 0u64;
        while cpu_seconds(std::process::id()).unwrap() <= before {
            for i in 0..1_000_000u64 {
                spin = std::hint::black_box(spin.wrapping_add(i * i));
            }
            assert!(started.elapsed().as_secs() < 5, "no CPU time counted after 5 s of spinning");
        }
        let after = cpu_seconds(std::process::id()).unwrap();
        assert!(after > before && after < before + 60.0, "{before} → {after}");
        assert_eq!(cpu_seconds(u32::MAX), None);
    }
}
