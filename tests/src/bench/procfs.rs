//! CPU time and resident memory of a process, read from `/proc` (Linux only).
//!
//! CPU is `utime + stime` of `/proc/PID/stat` (all threads, in clock ticks) so a figure over a
//! window is "cores used", comparable between a Rust process and pjsua whatever their thread
//! layout. RSS is `VmRSS` of `/proc/PID/status`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
}

/// Fields 14 and 15 of `/proc/PID/stat`, counted after the `)` that ends the command name
/// (which may itself contain spaces and parentheses).
pub fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no `)` in /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let get = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .context("/proc/PID/stat is too short")?
            .parse()
            .context("bad number in /proc/PID/stat")
    };
    Ok(get(14)? + get(15)?)
}

/// Resident set size in kB.
pub fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_rss_kb(&status)
}

pub fn parse_rss_kb(status: &str) -> Result<u64> {
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            return v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .context("bad VmRSS");
        }
    }
    bail!("no VmRSS line")
}

/// A CPU/RSS measurement over a window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Fraction of one core used (1.0 = 100 %).
    pub cores: f64,
    pub rss_kb: u64,
    pub seconds: f64,
}

/// Measures a process's CPU use over `length` (a wait of known length is what is measured,
/// not a synchronisation).
pub fn measure(pid: u32, length: Duration) -> Result<Window> {
    let hz = clock_ticks() as f64;
    let (t0, c0) = (Instant::now(), cpu_ticks(pid)?);
    std::thread::sleep(length);
    let (t1, c1) = (Instant::now(), cpu_ticks(pid)?);
    let seconds = (t1 - t0).as_secs_f64();
    Ok(Window {
        cores: (c1.saturating_sub(c0)) as f64 / hz / seconds,
        rss_kb: rss_kb(pid)?,
        seconds,
    })
}

/// `utime + stime` per thread name (`/proc/PID/task/*/comm`), in clock ticks, summed over the
/// threads that share a name (tokio's workers all share one).
pub fn thread_ticks(pid: u32) -> Result<BTreeMap<String, u64>> {
    let mut by_name = BTreeMap::new();
    let dir = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path();
        // A thread may end between listing and reading: skip it.
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue;
        };
        *by_name.entry(comm.trim().to_owned()).or_insert(0) += parse_cpu_ticks(&stat)?;
    }
    Ok(by_name)
}

/// Like [`measure`], also split by thread name: fraction of a core per name over the window.
pub fn measure_by_thread(pid: u32, length: Duration) -> Result<(Window, BTreeMap<String, f64>)> {
    let hz = clock_ticks() as f64;
    let (t0, c0, th0) = (Instant::now(), cpu_ticks(pid)?, thread_ticks(pid)?);
    std::thread::sleep(length);
    let (t1, c1, th1) = (Instant::now(), cpu_ticks(pid)?, thread_ticks(pid)?);
    let seconds = (t1 - t0).as_secs_f64();
    let threads = th1
        .into_iter()
        .map(|(name, ticks)| {
            let before = th0.get(&name).copied().unwrap_or(0);
            (name, ticks.saturating_sub(before) as f64 / hz / seconds)
        })
        .collect();
    let window = Window {
        cores: (c1.saturating_sub(c0)) as f64 / hz / seconds,
        rss_kb: rss_kb(pid)?,
        seconds,
    };
    Ok((window, threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_attributed_to_the_thread_that_used_it() {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name("procfs-spin".into())
            .spawn(move || {
                let until = Instant::now() + Duration::from_millis(300);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                let _ = stop_rx.recv(); // stay alive until measured
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(350));
        let threads = thread_ticks(std::process::id()).unwrap();
        drop(stop_tx);
        spinner.join().unwrap();
        let spun = threads.get("procfs-spin").copied().unwrap_or(0);
        assert!(spun >= clock_ticks() / 10, "{threads:?}");
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 300);
        assert!(parse_cpu_ticks("1 (x) S 1").is_err());
    }

    #[test]
    fn rss_is_read_in_kb() {
        assert_eq!(
            parse_rss_kb("Name: x\nVmRSS:\t  12345 kB\n").unwrap(),
            12345
        );
        assert!(parse_rss_kb("Name: x\n").is_err());
        assert!(rss_kb(std::process::id()).unwrap() > 0);
        assert!(cpu_ticks(std::process::id()).is_ok());
    }
}
