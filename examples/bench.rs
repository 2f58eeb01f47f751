//! The scale benchmark: the real `sgpolicy` binary against the built-in simulator with 10,000 groups in
//! 4 regions, 10% drifted, 20 ms latency and a per-(region, action) quota; one `--once` pass with the
//! configured concurrency, then the same pass with concurrency 1 as the sequential baseline.
//!
//! Run it with `scripts/bench.sh` (builds in release mode first), or:
//! `cargo build --release --bins --examples && target/release/examples/bench [options]`.
//!
//! Options (all optional): `--groups N` (10000), `--regions N` (4), `--drift F` (0.1),
//! `--latency-ms N` (20), `--quota N` (requests per second per region and action, 50),
//! `--max-rps F` (the agent's limit, default 95% of the quota, as docs/scale.md advises),
//! `--concurrency N` (16), `--accounts N` (1: the chain's own; more are reached through roles the
//! simulator also serves, groups spread round-robin, one policy file per account and region),
//! `--no-baseline`, `--shards N` (1: run N replicas at once, `--shard-index I --shard-count N`, against
//! the one simulator; each replica's wall time, peak RSS and CPU are printed, and the calls of all of
//! them together are checked against the formula; scripts/bench-shards.sh compares 4 shards with 1).
//!
//! It prints wall time, the ideal time the quota allows, their ratio, API calls by action as the agent
//! reports them, as the simulator counted them (its call counters, exact at any size, not its bounded
//! call log) and as the formula of docs/scale.md predicts them, throttled responses and effective
//! writes from both sides, peak RSS (VmHWM from /proc and the kernel's ru_maxrss) and CPU time of the
//! agent process (in all and per API call), and the baseline's figures and ratio.

use serde_json::{json, Value};
use sgpolicy_sim::{CallCounts, FaultConfig, Seed, Simulator};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REGIONS: [&str; 8] = [
    "cn-hangzhou",
    "cn-shanghai",
    "cn-beijing",
    "ap-southeast-1",
    "eu-central-1",
    "us-west-1",
    "cn-shenzhen",
    "ap-northeast-1",
];
const ACTIONS: [&str; 3] = [
    "DescribeSecurityGroups",
    "DescribeSecurityGroupAttribute",
    "ModifySecurityGroupPolicy",
];

struct Opts {
    groups: usize,
    regions: usize,
    drift: f64,
    latency_ms: u64,
    quota: u32,
    max_rps: Option<f64>,
    concurrency: usize,
    accounts: usize,
    baseline: bool,
    shards: usize,
}

/// One seeded and declared group. Account 0 is the chain's own; account k > 0 is [`account_id`].
struct G {
    account: usize,
    region: &'static str,
    id: String,
    drifted: bool,
}

fn account_id(k: usize) -> String {
    format!("{}", 2_000_000_000_000_000u64 + k as u64)
}

fn role_arn(k: usize) -> String {
    format!("acs:ram::{}:role/sgpolicy", account_id(k))
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        groups: 10_000,
        regions: 4,
        drift: 0.1,
        latency_ms: 20,
        quota: 50,
        max_rps: None,
        concurrency: 16,
        accounts: 1,
        baseline: true,
        shards: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--no-baseline" {
            o.baseline = false;
            continue;
        }
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{a} {v}: {e}");
        match a.as_str() {
            "--groups" => o.groups = v.parse().map_err(|e| bad(&e))?,
            "--regions" => o.regions = v.parse().map_err(|e| bad(&e))?,
            "--drift" => o.drift = v.parse().map_err(|e| bad(&e))?,
            "--latency-ms" => o.latency_ms = v.parse().map_err(|e| bad(&e))?,
            "--quota" => o.quota = v.parse().map_err(|e| bad(&e))?,
            "--max-rps" => o.max_rps = Some(v.parse().map_err(|e| bad(&e))?),
            "--concurrency" => o.concurrency = v.parse().map_err(|e| bad(&e))?,
            "--accounts" => o.accounts = v.parse().map_err(|e| bad(&e))?,
            "--shards" => o.shards = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.regions == 0
        || o.regions > REGIONS.len()
        || o.groups == 0
        || o.quota == 0
        || o.accounts == 0
        || o.shards == 0
    {
        return Err(format!(
            "--regions must be 1..={}, --groups, --quota, --accounts and --shards above 0",
            REGIONS.len()
        ));
    }
    Ok(o)
}

/// Every group: round-robin over regions and accounts, every k-th one drifted.
fn layout(o: &Opts) -> Vec<G> {
    let every = if o.drift > 0.0 {
        (1.0 / o.drift).round() as usize
    } else {
        usize::MAX
    };
    (0..o.groups)
        .map(|i| {
            // Drift counted within each region, so every region has the same share.
            let drifted = every != usize::MAX && (i / o.regions) % every == 0;
            G {
                account: (i / o.regions) % o.accounts,
                region: REGIONS[i % o.regions],
                id: format!("sg-bench-{i:06}"),
                drifted,
            }
        })
        .collect()
}

fn seed(groups: &[G], accounts: usize) -> Seed {
    let mut y = String::from("accessKeys:\n  - {id: benchid, secret: benchsecret}\nroles:\n");
    for k in 1..accounts {
        y += &format!("  - {{arn: \"{}\"}}\n", role_arn(k));
    }
    y += "securityGroups:\n";
    for g in groups {
        let p = if g.drifted { "Accept" } else { "Drop" };
        let account = match g.account {
            0 => String::new(),
            k => format!(", account: \"{}\"", account_id(k)),
        };
        y += &format!(
            "  - {{id: {}, region: {}, innerAccessPolicy: {p}{account}}}\n",
            g.id, g.region
        );
    }
    Seed::from_yaml(&y).expect("the generated seed parses")
}

/// One policy file per account and region, so no file comes near the per-file size limit.
fn write_policies(dir: &Path, groups: &[G]) {
    let mut files: BTreeMap<(usize, &str), String> = BTreeMap::new();
    for g in groups {
        let f = files.entry((g.account, g.region)).or_insert_with(|| {
            let account = match g.account {
                0 => String::new(),
                k => format!("account: {{roleArn: \"{}\"}}\n", role_arn(k)),
            };
            format!("{account}region: {}\ngroups:\n", g.region)
        });
        *f += &format!("  - {{id: {}, innerAccessPolicy: Drop}}\n", g.id);
    }
    for ((account, region), text) in files {
        std::fs::write(dir.join(format!("{account}-{region}.yaml")), text)
            .expect("write policy file");
    }
}

/// (groups, drifted) per (account, region): the unit ECS quotas apply to.
fn buckets(groups: &[G]) -> BTreeMap<(usize, &str), (u64, u64)> {
    let mut per: BTreeMap<(usize, &str), (u64, u64)> = BTreeMap::new();
    for g in groups {
        let e = per.entry((g.account, g.region)).or_default();
        e.0 += 1;
        e.1 += u64::from(g.drifted);
    }
    per
}

/// The formula of docs/scale.md: calls by action for one apply pass.
fn formula(groups: &[G]) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for (n, d) in buckets(groups).values() {
        *m.entry(ACTIONS[0]).or_default() += n.div_ceil(100);
        *m.entry(ACTIONS[1]).or_default() += n + d;
        *m.entry(ACTIONS[2]).or_default() += d;
    }
    m
}

/// The shortest time the quota allows: every (account, region, action) bucket runs in parallel, so
/// the pass can be no faster than its busiest bucket.
fn ideal(groups: &[G], quota: u32) -> Duration {
    let busiest = buckets(groups)
        .values()
        .flat_map(|(n, d)| [n.div_ceil(100), n + d, *d])
        .max()
        .unwrap_or(0);
    Duration::from_secs_f64(busiest as f64 / f64::from(quota))
}

struct Measured {
    wall: Duration,
    exit: i32,
    report: Value,
    vm_hwm_kib: u64,
    maxrss_kib: u64,
    cpu: Duration,
    /// What the simulator counted, independent of its bounded call log.
    sim: CallCounts,
    connections: usize,
}

/// Local ports of IPv4 TCP connections to `port` on 127.0.0.1 (from /proc/net/tcp): sampled during
/// the run, their count shows whether connections are pooled (about `--concurrency`) or not (one
/// per request).
fn client_ports(port: u16, into: &mut std::collections::BTreeSet<u16>) {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return;
    };
    let want = format!("0100007F:{port:04X}");
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() > 2 && cols[2] == want {
            if let Some(p) = cols[1]
                .split(':')
                .nth(1)
                .and_then(|h| u16::from_str_radix(h, 16).ok())
            {
                into.insert(p);
            }
        }
    }
}

fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn agent_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/bench -> target/<profile>/sgpolicy
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("sgpolicy")
}

// The child is reaped with wait4 (for its rusage), not Child::wait.
#[allow(clippy::zombie_processes)]
fn run_pass(
    rt: &tokio::runtime::Runtime,
    o: &Opts,
    groups: &[G],
    concurrency: usize,
    shards: usize,
) -> Vec<Measured> {
    let sim = Simulator::new(seed(groups, o.accounts));
    let throttle: serde_json::Map<String, Value> = ACTIONS
        .iter()
        .map(|a| (a.to_string(), json!({"perSecond": o.quota})))
        .collect();
    let faults: FaultConfig =
        serde_json::from_value(json!({"latencyMs": o.latency_ms, "throttle": throttle}))
            .expect("fault config");
    sim.set_faults(faults);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = sim.clone();
    rt.spawn(async move {
        let _ = server
            .serve(listener, async {
                let _ = stop_rx.await;
            })
            .await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    write_policies(dir.path(), groups);
    let max_rps = o.max_rps.unwrap_or(f64::from(o.quota) * 0.95);
    let start = Instant::now();
    let mut replicas: Vec<Replica> = (0..shards)
        .map(|i| {
            let mut cmd = Command::new(agent_path());
            cmd.args(["--policies"])
                .arg(dir.path())
                .args(["--once", "--output", "json"])
                .args(["--max-rps", &max_rps.to_string()])
                .args(["--concurrency", &concurrency.to_string()])
                .args(["--max-changes", &groups.len().to_string()]);
            if shards > 1 {
                cmd.args(["--shard-index", &i.to_string()])
                    .args(["--shard-count", &shards.to_string()]);
            }
            let mut child = cmd
                .env_clear()
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "benchid")
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "benchsecret")
                .env("ALIBABA_CLOUD_ENDPOINT_ECS", &url)
                .env("ALIBABA_CLOUD_ENDPOINT_STS", &url)
                .env("RUST_LOG", "sgpolicy=warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "starting {}: {e} (build it with cargo build --release)",
                        agent_path().display()
                    )
                });
            let mut stdout = child.stdout.take().expect("stdout");
            Replica {
                pid: child.id() as i32,
                reader: Some(std::thread::spawn(move || {
                    let mut s = String::new();
                    let _ = stdout.read_to_string(&mut s);
                    s
                })),
                hwm: 0,
                ended: None,
            }
        })
        .collect();
    let mut ports = std::collections::BTreeSet::new();
    while replicas.iter().any(|r| r.ended.is_none()) {
        client_ports(addr.port(), &mut ports);
        for r in replicas.iter_mut().filter(|r| r.ended.is_none()) {
            if let Some(v) = vm_hwm_kib(r.pid) {
                r.hwm = r.hwm.max(v);
            }
            let mut status = 0;
            // SAFETY: plain FFI calls with valid pointers to locals; `pid` is our own child.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let w = unsafe { libc::wait4(r.pid, &mut status, libc::WNOHANG, &mut ru) };
            if w == r.pid {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    -1
                };
                r.ended = Some((code, ru, start.elapsed()));
            } else if w < 0 {
                panic!("wait4 failed: {}", std::io::Error::last_os_error());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = stop_tx.send(());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let counts = sim.call_counts();
    replicas
        .into_iter()
        .map(|mut r| {
            let (exit, rusage, wall) = r.ended.expect("every replica ended");
            let out = r
                .reader
                .take()
                .and_then(|t| t.join().ok())
                .unwrap_or_default();
            Measured {
                wall,
                exit,
                report: serde_json::from_str(&out).unwrap_or(Value::Null),
                vm_hwm_kib: r.hwm,
                maxrss_kib: rusage.ru_maxrss as u64,
                cpu: tv(rusage.ru_utime) + tv(rusage.ru_stime),
                sim: counts.clone(),
                connections: ports.len(),
            }
        })
        .collect()
}

/// One agent process of a run: its pid, its stdout being read, its peak VmHWM so far, and once it
/// exited its status, rusage and wall time.
struct Replica {
    pid: i32,
    reader: Option<std::thread::JoinHandle<String>>,
    hwm: u64,
    ended: Option<(i32, libc::rusage, Duration)>,
}

fn print(label: &str, m: &Measured, ideal: Duration, formula: &BTreeMap<&str, u64>) {
    let s = &m.report["summary"];
    println!("== {label}");
    println!(
        "wall {:.2} s | ideal {:.2} s | ratio {:.3} | exit {} | changed {} in sync {} failed {} errors {}",
        m.wall.as_secs_f64(),
        ideal.as_secs_f64(),
        m.wall.as_secs_f64() / ideal.as_secs_f64(),
        m.exit,
        s["changed"],
        s["inSync"],
        s["failed"],
        s["errors"]
    );
    for a in ACTIONS {
        println!(
            "  {a:<32} agent {:>6}  simulator {:>6}  formula {:>6}",
            m.report["apiCalls"][a].as_u64().unwrap_or(0),
            m.sim.of_action(a),
            formula.get(a).copied().unwrap_or(0)
        );
    }
    println!(
        "throttled: {} (simulator) / {} (agent) | retried: {} | effective writes: {} (simulator) / {} changed (agent) | TCP connections seen: {}",
        m.sim.of_fault("throttle"),
        m.report["apiRetries"]["throttled"],
        m.report["apiRetries"]["retried"],
        m.sim.effective,
        s["changed"],
        m.connections
    );
    // ru_maxrss also counts the moments between fork and exec, when the child still maps the bench
    // driver's pages; VmHWM is reset by exec and is the agent's own peak.
    println!(
        "peak RSS: VmHWM {:.1} MiB (wait4 ru_maxrss {:.1} MiB, includes the pre-exec fork) | CPU {:.2} s ({:.1}% of wall)",
        m.vm_hwm_kib as f64 / 1024.0,
        m.maxrss_kib as f64 / 1024.0,
        m.cpu.as_secs_f64(),
        100.0 * m.cpu.as_secs_f64() / m.wall.as_secs_f64()
    );
    // Per request the agent reports making (every action, retries and throttled answers included).
    let calls: u64 = m.report["apiCalls"]
        .as_object()
        .map_or(0, |c| c.values().filter_map(Value::as_u64).sum());
    println!(
        "agent CPU per API call: {:.1} µs ({calls} calls)",
        m.cpu.as_secs_f64() * 1e6 / calls.max(1) as f64
    );
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(64);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let groups = layout(&o);
    let formula = formula(&groups);
    let ideal = ideal(&groups, o.quota);
    println!(
        "sgpolicy bench: {} groups in {} regions and {} account(s), {} drifted, {} ms latency, quota {}/s per account, region and action, agent --max-rps {} --concurrency {}",
        o.groups,
        o.regions,
        o.accounts,
        groups.iter().filter(|g| g.drifted).count(),
        o.latency_ms,
        o.quota,
        o.max_rps.unwrap_or(f64::from(o.quota) * 0.95),
        o.concurrency
    );
    if o.shards > 1 {
        let ok = shards(&rt, &o, &groups, &formula, ideal);
        std::process::exit(if ok { 0 } else { 1 });
    }
    let m = run_pass(&rt, &o, &groups, o.concurrency, 1).remove(0);
    print(
        &format!("concurrency {}", o.concurrency),
        &m,
        ideal,
        &formula,
    );
    let mut ok =
        m.exit == 0 && m.report["summary"]["failed"] == 0 && m.report["summary"]["errors"] == 0;
    if o.baseline {
        let b = run_pass(&rt, &o, &groups, 1, 1).remove(0);
        print("sequential baseline (concurrency 1)", &b, ideal, &formula);
        println!(
            "baseline / concurrent wall time: {:.2}x",
            b.wall.as_secs_f64() / m.wall.as_secs_f64()
        );
        ok &= b.exit == 0;
    }
    if !ok {
        std::process::exit(1);
    }
}

/// `--shards N`: N replicas at once; per replica its groups, calls, wall, peak RSS and CPU, then all of
/// them together against the simulator's counts and the formula. Whether every one succeeded.
fn shards(
    rt: &tokio::runtime::Runtime,
    o: &Opts,
    groups: &[G],
    formula: &BTreeMap<&str, u64>,
    ideal: Duration,
) -> bool {
    let runs = run_pass(rt, o, groups, o.concurrency, o.shards);
    println!("== {} shards, concurrency {} each", o.shards, o.concurrency);
    let mut ok = true;
    let mut agent: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, m) in runs.iter().enumerate() {
        let s = &m.report["summary"];
        let calls: u64 = m.report["apiCalls"]
            .as_object()
            .map_or(0, |c| c.values().filter_map(Value::as_u64).sum());
        for a in ACTIONS {
            *agent.entry(a).or_default() += m.report["apiCalls"][a].as_u64().unwrap_or(0);
        }
        let n = m.report["groups"].as_array().map_or(0, Vec::len);
        println!(
            "shard {i}: {n} groups, {calls} calls ({} retried, {} throttled) | wall {:.2} s | exit {} | changed {} failed {} errors {} | peak RSS VmHWM {:.1} MiB | CPU {:.2} s",
            m.report["apiRetries"]["retried"],
            m.report["apiRetries"]["throttled"],
            m.wall.as_secs_f64(),
            m.exit,
            s["changed"],
            s["failed"],
            s["errors"],
            m.vm_hwm_kib as f64 / 1024.0,
            m.cpu.as_secs_f64()
        );
        ok &= m.exit == 0 && s["failed"] == 0 && s["errors"] == 0;
    }
    let wall = runs.iter().map(|m| m.wall).max().unwrap_or_default();
    println!(
        "all shards: wall {:.2} s (the slowest) | ideal {:.2} s | ratio {:.3} | TCP connections seen: {} | simulator: {} throttled, {} effective writes",
        wall.as_secs_f64(),
        ideal.as_secs_f64(),
        wall.as_secs_f64() / ideal.as_secs_f64(),
        runs[0].connections,
        runs[0].sim.of_fault("throttle"),
        runs[0].sim.effective
    );
    for a in ACTIONS {
        println!(
            "  {a:<32} agents {:>6}  simulator {:>6}  formula {:>6}",
            agent.get(a).copied().unwrap_or(0),
            runs[0].sim.of_action(a),
            formula.get(a).copied().unwrap_or(0)
        );
    }
    ok
}
