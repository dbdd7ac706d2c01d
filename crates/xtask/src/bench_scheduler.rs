//! `cargo xtask bench scheduler`: the scheduler's quality and cost on a synthetic year of
//! bookings, at several lab sizes (release build; a debug xtask re-runs itself).
//!
//! Each size replays the year model of `labpods_scheduler_sim::simulate` (bookings of 1 to
//! 5 hosts lasting 4 h to a week, 30% booked ahead, 80% offered load, arrivals tripled in
//! the release crunches of weeks 20 and 45) against the real planner (`plan`), once with
//! backfill (the operator's default) and once as plain FCFS, next to the offline bound
//! (a fluid relaxation per profile). The profiles keep the default lab's shares of the hosts
//! (40/30/20/10%). Reported per size: utilization of both and of the bound, the planner's
//! share of the bound (target >= 0.95), mean and p95 wait of both and the p95 ratio
//! planner/FCFS (target <= 0.5), and what it cost: planning passes, wall and CPU time.
//!
//! A pass costs in proportion to the hosts it plans times the requests waiting, and a lab of
//! N hosts has N times the bookings, so a simulated day costs N^2 and more in a crunch, when
//! the queue grows with N too (1,000 hosts x 365 days took 22 min, 1,036 CPU s, on the
//! shared 2-core VM, most of it in the two crunches). The default therefore simulates 91
//! days (13 weeks, no crunch) at 1,000 hosts and 91 x (1000/N)^2 days at N hosts (whole
//! weeks, 14 to 365), and says so; `--days` runs every size for as long as asked.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use labpods_scheduler_sim::{
    Discipline, PolicyOutcome, Progress, SimulationConfig, SimulationReport, simulate_with_progress,
};

const USAGE: &str = "usage: cargo xtask bench scheduler [--hosts N[,N...]] [--days N] [--seed N]
  --hosts  lab sizes (default 1000,3000,10000)
  --days   simulated days for every size (default 91 x (1000/hosts)^2 in whole
           weeks, 14 to 365: 91 at 1,000 hosts, 14 at 3,000 and 10,000; the release
           crunches of weeks 20 and 45 need 147 and 322 days, and cost the most)
  --seed   the bookings' seed (default 1)";

const UTILIZATION_TARGET: f64 = 0.95;
const P95_RATIO_TARGET: f64 = 0.5;
/// The first release crunch (week 20) ends on this day: a shorter run has none.
const FIRST_CRUNCH_END: i64 = 21 * 7;
/// A progress line at least this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct Options {
    hosts: Vec<usize>,
    days: Option<i64>,
    seed: u64,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        hosts: vec![1_000, 3_000, 10_000],
        days: None,
        seed: 1,
    };
    for (flag, value) in crate::bench::flag_values(args, USAGE)? {
        match flag {
            "--hosts" => {
                o.hosts = value
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--hosts")?;
            }
            "--days" => o.days = Some(value.parse().context("--days")?),
            "--seed" => o.seed = value.parse().context("--seed")?,
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    ensure!(
        !o.hosts.is_empty() && o.hosts.iter().all(|&h| h >= 10) && o.days.is_none_or(|d| d > 0),
        "at least 10 hosts per size and a positive number of days\n{USAGE}"
    );
    Ok(o)
}

/// 91 days at 1,000 hosts; a simulated day costs ~hosts^2, so scaled by that, in whole
/// weeks, 14 to 365.
fn default_days(hosts: usize) -> i64 {
    let days = 91.0 * (1_000.0 / hosts as f64).powi(2);
    ((days / 7.0).ceil() as i64 * 7).clamp(14, 365)
}

/// The default lab's profiles, each scaled to keep its share of `hosts`.
fn profiles(hosts: usize) -> Vec<(String, usize)> {
    let base = SimulationConfig::default().profiles;
    let total: usize = base.iter().map(|p| p.1).sum();
    base.into_iter()
        .map(|(name, n)| (name, (n * hosts + total / 2) / total))
        .collect()
}

pub fn run(args: &[String]) -> Result<()> {
    if crate::bench::reran_in_release("scheduler", args)? {
        return Ok(());
    }
    let o = parse(args)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "# Scheduler benchmark (release build, {threads} CPUs, seed {})\n",
        o.seed
    );
    println!(
        "the year model of labpods_scheduler_sim::simulate: bookings of 1 to 5 hosts, 4 h to a week,\n\
         30% booked 1 to 7 days ahead, 80% offered load, arrivals x3 in weeks 20 and 45 (release\n\
         crunches); profiles 40/30/20/10% of the hosts; each (policy, profile) is planned alone\n\
         (the same schedule as lab-wide passes), on up to {threads} threads\n"
    );
    let mut rows = Vec::new();
    for &hosts in &o.hosts {
        let config = SimulationConfig {
            seed: o.seed,
            profiles: profiles(hosts),
            days: o.days.unwrap_or_else(|| default_days(hosts)),
            ..SimulationConfig::default()
        };
        let reduced = if o.days.is_none() && config.days < 365 {
            " (not the year: a simulated day costs ~hosts^2; see --days)"
        } else {
            ""
        };
        println!("{hosts} hosts, {} days{reduced}: simulating", config.days);
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let reporter = Reporter::new(hosts, &config);
        let report = simulate_with_progress(&config, &reporter.callback());
        let row = Row {
            report,
            wall: started.elapsed(),
            cpu: cpu_seconds()
                .zip(cpu_before)
                .map(|(after, before)| after - before),
            slowest: reporter.slowest(),
        };
        print!("{}", row.report);
        println!("  wall {:.0} s\n", row.wall.as_secs_f64());
        rows.push(row);
    }
    print_tables(&rows);
    Ok(())
}

struct Row {
    report: SimulationReport,
    wall: Duration,
    /// CPU seconds of this process over the run (all threads), when /proc tells.
    cpu: Option<f64>,
    slowest: Slowest,
}

/// The slowest pass of a size (CPU time of its thread, so that other processes on a shared
/// machine do not count) and the longest queue any pass planned.
#[derive(Debug, Clone, Copy, Default)]
struct Slowest {
    pass: Duration,
    queue_of_that_pass: usize,
    longest_queue: usize,
}

thread_local! {
    /// This thread's CPU time at the previous pass of the run it is on.
    static LAST_PASS: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// CPU time of the calling thread, from /proc/thread-self/schedstat (Linux; nanoseconds).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Prints a progress line at most every PROGRESS_EVERY (which runs are done, where the
/// others are in simulated time) and keeps the slowest pass.
struct Reporter {
    hosts: usize,
    days: i64,
    /// Runs in all: one per (policy, profile).
    runs: usize,
    started: Instant,
    state: Mutex<ReporterState>,
}

struct ReporterState {
    last_line: Instant,
    /// (policy, profile) -> (simulated day, done).
    runs: BTreeMap<(&'static str, String), (f64, bool)>,
    slowest: Slowest,
}

impl Reporter {
    fn new(hosts: usize, config: &SimulationConfig) -> Self {
        let now = Instant::now();
        Self {
            hosts,
            days: config.days,
            runs: 2 * config.profiles.len(),
            started: now,
            state: Mutex::new(ReporterState {
                last_line: now,
                runs: BTreeMap::new(),
                slowest: Slowest::default(),
            }),
        }
    }

    fn slowest(&self) -> Slowest {
        self.state.lock().map(|s| s.slowest).unwrap_or_default()
    }

    fn callback(&self) -> impl Fn(Progress<'_>) + Sync + '_ {
        move |p: Progress<'_>| {
            // The CPU time since this thread's previous pass of the same run: this pass and
            // the bookkeeping after the previous one. A run's first pass is not measured.
            let now = if p.done { None } else { thread_cpu() };
            let pass = LAST_PASS
                .replace(now)
                .zip(now)
                .map(|(before, after)| after.saturating_sub(before));
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let slowest = &mut state.slowest;
            if let Some(pass) = pass.filter(|pass| *pass > slowest.pass) {
                slowest.pass = pass;
                slowest.queue_of_that_pass = p.queue;
            }
            slowest.longest_queue = slowest.longest_queue.max(p.queue);
            let name = match p.discipline {
                Discipline::Backfill => "planner",
                Discipline::PlainFcfs => "FCFS",
            };
            state
                .runs
                .insert((name, p.profile.to_owned()), (p.day, p.done));
            if state.last_line.elapsed() < PROGRESS_EVERY {
                return;
            }
            state.last_line = Instant::now();
            let done = state.runs.values().filter(|v| v.1).count();
            let running: Vec<String> = state
                .runs
                .iter()
                .filter(|(_, v)| !v.1)
                .map(|((name, profile), (day, _))| {
                    format!("{name} {profile} day {day:.0}/{}", self.days)
                })
                .collect();
            println!(
                "  [{:>4.0} s] {} hosts: {done} of {} runs done; {}",
                self.started.elapsed().as_secs_f64(),
                self.hosts,
                self.runs,
                running.join(", ")
            );
        }
    }
}

/// User + system CPU seconds of this process, all threads, from /proc/self/stat (Linux;
/// clock ticks are 1/100 s there).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is the first, utime the
    // 12th and stime the 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `a / b`, or None when b is 0 (no wait at all: the ratio says nothing).
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

fn print_tables(rows: &[Row]) {
    println!("## Utilization (planner = FCFS with backfill, the operator's default)\n");
    println!(
        "{:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>14}",
        "hosts", "days", "bookings", "planner", "FCFS", "bound", "planner/bound"
    );
    for Row { report: r, .. } in rows {
        println!(
            "{:>6} {:>5} {:>8} {:>7.1}% {:>7.1}% {:>7.1}% {:>14}",
            r.hosts,
            r.days,
            r.bookings,
            r.backfill.utilization * 100.0,
            r.fcfs.utilization * 100.0,
            r.utilization_upper_bound * 100.0,
            fmt_ratio(ratio(r.backfill.utilization, r.utilization_upper_bound)),
        );
    }
    println!("\n## Waits (hours from the asked start to the start)\n");
    println!(
        "{:>6} {:>5} {:>12} {:>9} {:>11} {:>8} {:>16}",
        "hosts", "days", "planner mean", "FCFS mean", "planner p95", "FCFS p95", "p95 planner/FCFS"
    );
    for Row { report: r, .. } in rows {
        let (b, f) = (&r.backfill, &r.fcfs);
        println!(
            "{:>6} {:>5} {:>12.1} {:>9.1} {:>11.1} {:>8.1} {:>16}",
            r.hosts,
            r.days,
            b.wait_mean_hours,
            f.wait_mean_hours,
            b.wait_p95_hours,
            f.wait_p95_hours,
            fmt_ratio(ratio(b.wait_p95_hours, f.wait_p95_hours)),
        );
    }
    println!(
        "\n## Cost (passes of both policies, each over one profile's hosts; the slowest pass's CPU\n\
         time and how many requests it planned, and the longest queue a pass planned)\n"
    );
    println!(
        "{:>6} {:>5} {:>9} {:>8} {:>8} {:>12} {:>19} {:>9} {:>13}",
        "hosts",
        "days",
        "passes",
        "wall s",
        "CPU s",
        "CPU ms/pass",
        "slowest pass CPU ms",
        "its queue",
        "longest queue"
    );
    for row in rows {
        let r = &row.report;
        let passes = r.backfill.passes + r.fcfs.passes;
        println!(
            "{:>6} {:>5} {:>9} {:>8.0} {:>8} {:>12} {:>19.1} {:>9} {:>13}",
            r.hosts,
            r.days,
            passes,
            row.wall.as_secs_f64(),
            row.cpu
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}")),
            row.cpu.map_or_else(
                || "-".to_owned(),
                |c| format!("{:.2}", c * 1e3 / passes.max(1) as f64)
            ),
            row.slowest.pass.as_secs_f64() * 1e3,
            row.slowest.queue_of_that_pass,
            row.slowest.longest_queue,
        );
    }
    println!("\n## Targets\n");
    for Row { report: r, .. } in rows {
        let (b, f) = (&r.backfill, &r.fcfs);
        let share = ratio(b.utilization, r.utilization_upper_bound);
        println!(
            "{:>6} hosts: utilization / bound {} (target >= {UTILIZATION_TARGET}): {}",
            r.hosts,
            fmt_exact(share),
            verdict(share, |s| s >= UTILIZATION_TARGET)
        );
        let p95 = ratio(b.wait_p95_hours, f.wait_p95_hours);
        println!(
            "{:>6} hosts: p95 wait planner / FCFS {} (target <= {P95_RATIO_TARGET}): {}{}",
            r.hosts,
            fmt_exact(p95),
            verdict(p95, |s| s <= P95_RATIO_TARGET),
            no_queue_note(r, b, f)
        );
    }
}

/// Three decimals, so that a verdict never contradicts the figure shown.
fn fmt_exact(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}

fn verdict(value: Option<f64>, met: impl Fn(f64) -> bool) -> &'static str {
    match value {
        Some(v) if met(v) => "met",
        Some(_) => "MISSED",
        None => "n/a",
    }
}

/// Why a ratio may say little: no crunch in the period, or nobody waited.
fn no_queue_note(r: &SimulationReport, b: &PolicyOutcome, f: &PolicyOutcome) -> String {
    let mut notes = Vec::new();
    if r.days < FIRST_CRUNCH_END {
        notes.push(format!(
            "{} days reach no release crunch (the first ends on day {FIRST_CRUNCH_END})",
            r.days
        ));
    }
    if f.wait_p95_hours == 0.0 && b.wait_p95_hours == 0.0 {
        notes.push("95% of bookings started when asked under both policies".to_owned());
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_the_default_profiles_and_shorten_big_runs() {
        assert_eq!(
            profiles(1_000).iter().map(|p| p.1).collect::<Vec<_>>(),
            [400, 300, 200, 100]
        );
        assert_eq!(profiles(3_000).iter().map(|p| p.1).sum::<usize>(), 3_000);
        assert_eq!(default_days(100), 365);
        assert_eq!(default_days(1_000), 91);
        assert_eq!(default_days(3_000), 14);
        assert_eq!(default_days(10_000), 14);
    }
}
