//! `--jobs`: what running tasks at once costs against running one, in wall
//! time and memory.
//!
//! Runs the real `kkrun` binary (the one Cargo builds beside this
//! benchmark, with the same profile: `target/release/kkrun` under
//! `cargo bench`) against a loopback OpenAI-compatible server that plays
//! the model of every task and waits `KKRUN_BENCH_LATENCY_MS` (300) before
//! each reply. Every task is the end-to-end tests' `fix_and_approve` task
//! on a small Python repository: a blueprint, a code stage that fixes
//! `add`, the checks, and an approving preview (four model turns). Each
//! round starts from a fresh repository and times, as the median of
//! `KKRUN_BENCH_ROUNDS` rounds after one warm-up run:
//!
//! - one task alone (`--jobs 1`, in the work tree itself);
//! - one task alone with `--isolate` (in its own worktree, as every task of
//!   a `--jobs` run is), to show what isolation adds;
//! - `KKRUN_BENCH_TASKS` (8) tasks with `--jobs KKRUN_BENCH_JOBS` (4).
//!
//! For each it gives the wall time of the whole kkrun process (start to
//! exit) and its peak resident set size: `ru_maxrss` from `wait4`, the
//! largest peak of kkrun and of every process it waited for (checks, git,
//! the sandbox launcher), and kkrun's own `VmHWM` read from `/proc` every
//! 10 ms until it exits; and the CPU time of kkrun and the processes it
//! waited for, which shows how much of the wall time the machine's cores
//! had to give. The targets are the issue's: the `--jobs` run's
//! wall time at most 2.3 times one task's, its peak RSS at most twice.
//!
//! Run with `cargo bench --bench jobs` (Linux only). `cargo test --benches`
//! runs two tasks with two jobs, 20 ms of latency and one round as a smoke
//! test.

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;
mod support;

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("benches/jobs.rs reads wait4's rusage and /proc: Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::process::Stdio;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use crate::e2e_support::task_server::{ServerOptions, TaskServer};
    use crate::e2e_support::{Fixture, TaskFile};
    use crate::support::{benching, env_number, ms};

    pub fn main() {
        let benching = benching();
        let rounds = env_number("KKRUN_BENCH_ROUNDS", if benching { 5 } else { 1 });
        let latency = env_number("KKRUN_BENCH_LATENCY_MS", if benching { 300 } else { 20 });
        let tasks = env_number("KKRUN_BENCH_TASKS", if benching { 8 } else { 2 });
        let jobs = env_number("KKRUN_BENCH_JOBS", if benching { 4 } else { 2 });

        let server = TaskServer::start(ServerOptions {
            latency: Duration::from_millis(latency as u64),
            max_in_flight: None,
        });
        let program = crate::e2e_support::kkrun(std::path::Path::new("."), &[]);
        eprintln!("kkrun binary: {}", program.get_program().to_string_lossy());

        let single = Case {
            label: "1 task, --jobs 1".to_string(),
            tasks: 1,
            args: vec!["--jobs".to_string(), "1".to_string()],
        };
        let isolated = Case {
            label: "1 task, --jobs 1 --isolate".to_string(),
            tasks: 1,
            args: vec![
                "--jobs".to_string(),
                "1".to_string(),
                "--isolate".to_string(),
            ],
        };
        let many = Case {
            label: format!("{tasks} tasks, --jobs {jobs}"),
            tasks,
            args: vec!["--jobs".to_string(), jobs.to_string()],
        };
        let cases = [single, isolated, many];

        // One warm-up run loads the binary, Python and git into the page cache.
        cases[0].run(&server);
        let mut measured: Vec<Vec<Measure>> = vec![Vec::new(); cases.len()];
        for round in 1..=rounds {
            // The cases alternate so a change in the machine's load touches
            // them alike.
            for (case, results) in cases.iter().zip(&mut measured) {
                let measure = case.run(&server);
                eprintln!(
                    "round {round}: {:<28} {:>8.0} ms, ru_maxrss {:>7} KiB, VmHWM {:>7} KiB, \
                     CPU {:>6.0} ms",
                    case.label,
                    ms(measure.wall),
                    measure.max_rss_kib,
                    measure.hwm_kib,
                    ms(measure.cpu)
                );
                results.push(measure);
            }
        }

        let medians: Vec<Measure> = measured.iter().map(|m| Measure::median(m)).collect();
        println!("latency per model turn: {latency} ms, rounds: {rounds} (median)");
        println!(
            "{:<28} {:>10} {:>16} {:>16} {:>10}",
            "run", "wall ms", "ru_maxrss KiB", "kkrun VmHWM KiB", "CPU ms"
        );
        for (case, m) in cases.iter().zip(&medians) {
            println!(
                "{:<28} {:>10.0} {:>16} {:>16} {:>10.0}",
                case.label,
                ms(m.wall),
                m.max_rss_kib,
                m.hwm_kib,
                ms(m.cpu)
            );
        }
        let (one, all) = (&medians[0], &medians[2]);
        let verdict = |ratio: f64, target: f64| if ratio <= target { "met" } else { "NOT met" };
        let wall = ms(all.wall) / ms(one.wall);
        println!(
            "wall, {} / one task: {wall:.2} (target <= 2.3: {})",
            cases[2].label,
            verdict(wall, 2.3)
        );
        let rss = all.max_rss_kib as f64 / one.max_rss_kib as f64;
        println!(
            "peak RSS (ru_maxrss), {} / one task: {rss:.2} (target <= 2: {})",
            cases[2].label,
            verdict(rss, 2.0)
        );
        let hwm = all.hwm_kib as f64 / one.hwm_kib as f64;
        println!(
            "kkrun's own VmHWM, {} / one task: {hwm:.2} (target <= 2: {})",
            cases[2].label,
            verdict(hwm, 2.0)
        );
        let isolated = ms(medians[1].wall) / ms(one.wall);
        println!("wall, one task with --isolate / without: {isolated:.2}");
    }

    /// `PATH` with the directory of the real `python3` first. The checks
    /// run `python3`; where that is a version manager's shim (pyenv's runs
    /// about 200 bash processes a call), the figures would measure the shim
    /// instead of kkrun.
    fn path_with_real_python() -> std::ffi::OsString {
        static PATH: std::sync::OnceLock<std::ffi::OsString> = std::sync::OnceLock::new();
        PATH.get_or_init(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let found = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))",
                ])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
            match found {
                Some(dir) if !dir.is_empty() => {
                    let mut joined = std::ffi::OsString::from(dir);
                    joined.push(":");
                    joined.push(&path);
                    joined
                }
                _ => path,
            }
        })
        .clone()
    }

    /// One way of running kkrun.
    struct Case {
        label: String,
        tasks: usize,
        args: Vec<String>,
    }

    /// What one kkrun process cost.
    #[derive(Debug, Clone, Copy)]
    struct Measure {
        wall: Duration,
        /// `ru_maxrss` from `wait4`: the largest peak RSS of kkrun and the
        /// processes it waited for, in KiB.
        max_rss_kib: u64,
        /// kkrun's own peak RSS (`VmHWM`), sampled, in KiB.
        hwm_kib: u64,
        /// User and system CPU time of kkrun and the processes it waited
        /// for.
        cpu: Duration,
    }

    impl Measure {
        /// The median of each figure on its own.
        fn median(all: &[Measure]) -> Measure {
            fn mid<T: Ord + Copy>(mut values: Vec<T>) -> T {
                values.sort();
                values[values.len() / 2]
            }
            Measure {
                wall: mid(all.iter().map(|m| m.wall).collect()),
                max_rss_kib: mid(all.iter().map(|m| m.max_rss_kib).collect()),
                hwm_kib: mid(all.iter().map(|m| m.hwm_kib).collect()),
                cpu: mid(all.iter().map(|m| m.cpu).collect()),
            }
        }
    }

    impl Case {
        /// Runs the case once on a fresh repository; every task must pass.
        fn run(&self, server: &TaskServer) -> Measure {
            let fx = Fixture::new();
            let files: Vec<String> = (1..=self.tasks)
                .map(|i| {
                    fx.add_task(&TaskFile::new(&format!("task-{i}"), &[]).model("openai:gpt-4.1"))
                })
                .collect();
            let worktrees = fx.root().join("worktrees");
            let mut args: Vec<&str> = vec!["run", "--no-preflight", "--out", "out"];
            args.extend(self.args.iter().map(String::as_str));
            if self.args.iter().any(|a| a == "--isolate") || self.tasks > 1 {
                args.extend(["--worktrees", worktrees.to_str().expect("UTF-8 path")]);
            }
            args.extend(files.iter().map(String::as_str));
            let stdout = fx.root().join("kkrun.stdout");
            let stderr = fx.root().join("kkrun.stderr");
            let mut command = fx.kkrun(&args);
            command
                .env("PATH", path_with_real_python())
                .env("OPENAI_BASE_URL", server.base_url())
                .env("OPENAI_API_KEY", "sk-bench-jobs-0123456789")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout).expect("create the stdout file"))
                .stderr(std::fs::File::create(&stderr).expect("create the stderr file"));

            let started = Instant::now();
            let child = command.spawn().expect("start kkrun");
            let pid = child.id() as libc::pid_t;
            let hwm = Arc::new(AtomicU64::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let sampler = {
                let (hwm, done) = (hwm.clone(), done.clone());
                std::thread::spawn(move || {
                    let status = format!("/proc/{pid}/status");
                    while !done.load(Ordering::SeqCst) {
                        if let Some(kib) = read_hwm(&status) {
                            hwm.fetch_max(kib, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            };
            // Wait for the exit without reaping, so the sampler never reads
            // another process that reused the pid; then reap with `wait4`.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is a valid siginfo_t to write into.
            let waited = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            let wall = started.elapsed();
            assert_eq!(waited, 0, "waitid: {}", std::io::Error::last_os_error());
            done.store(true, Ordering::SeqCst);
            sampler.join().expect("the VmHWM sampler");
            let mut status: libc::c_int = 0;
            // SAFETY: an all-zero rusage is valid; wait4 fills it in.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is our unreaped child; both pointers are valid.
            let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
            // The child is reaped: `Child` must not wait for it again.
            drop(child);
            let exited = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            assert!(
                exited == Some(0),
                "{}: kkrun exited with {exited:?} (status {status})\nstdout:\n{}\nstderr:\n{}",
                self.label,
                std::fs::read_to_string(&stdout).unwrap_or_default(),
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
            Measure {
                wall,
                // KiB on Linux.
                max_rss_kib: usage.ru_maxrss as u64,
                hwm_kib: hwm.load(Ordering::SeqCst),
                cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            }
        }
    }

    fn timeval(time: libc::timeval) -> Duration {
        Duration::from_secs(time.tv_sec as u64) + Duration::from_micros(time.tv_usec as u64)
    }

    /// The `VmHWM:` line of a `/proc/PID/status` file, in KiB.
    fn read_hwm(status: &str) -> Option<u64> {
        let text = std::fs::read_to_string(status).ok()?;
        let line = text.lines().find(|line| line.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}
