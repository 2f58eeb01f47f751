//! The isolation check's benchmark (issue 19, point 8): the pure analysis over 10,000 declared groups
//! among 50,000 network interfaces with up to 5 groups each, and (with `--calls`) the real binary's
//! check against the simulator seeded with the same estate, its calls compared with docs/scale.md's
//! formula.
//!
//! `cargo build --release --bins --examples && target/release/examples/bench_isolation [options]`
//!
//! Options: `--groups N` (10000), `--interfaces N` (50000), `--max-groups N` (5, groups per interface),
//! `--vpcs N` (1), `--calls` (also run `sgpolicy --once --dry-run --check-isolation` against the
//! simulator; slow: one attribute read per group), `--max-rps F` (for `--calls` and `--daemon`,
//! 2000), `--daemon` (run the real daemon against the simulator holding the estate, with the push
//! receiver on; once its start-up pass is done, add a self-referencing SSH rule to an isolated
//! declared group through the simulator's console, whose EventBridge pushes the
//! `AuthorizeSecurityGroup` event, and print the time from the push to the daemon's warning).
//!
//! The estate is deterministic (a fixed seed). Every group has three ingress rules (HTTPS from an
//! outside CIDR, SSH from a "bastion" group, a priority-1 drop of the bastion's telnet) and one egress
//! rule; 5% of groups also admit themselves on 8080 (not isolated), 5% open ALL to 10.0.0.0/8 behind a
//! priority-1 drop of everything from 10.0.0.0/8 (shadowed), and 1% are Accept groups (shared-group
//! paths for the declared groups their members are in).
//!
//! It prints the analysis CPU time (user + system, `getrusage`), its wall time, the peak memory the
//! analysis allocates on top of the estate (a counting allocator: exact, not sampled), the estate's own
//! size, and the verdicts by status.

use serde_json::Value;
use sgpolicy::ecs::api::Permission;
use sgpolicy::isolation::model::{Analysis, Estate, GroupState, Member, Rule, Status};
use sgpolicy::model::Policy;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the bytes live now and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// User + system CPU time of this process.
fn cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

struct Options {
    groups: usize,
    interfaces: usize,
    max_groups: usize,
    vpcs: usize,
    calls: bool,
    daemon: bool,
    max_rps: f64,
}

fn options() -> Options {
    let mut o = Options {
        groups: 10_000,
        interfaces: 50_000,
        max_groups: 5,
        vpcs: 1,
        calls: false,
        daemon: false,
        max_rps: 2000.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--groups" => o.groups = value().parse().expect("--groups N"),
            "--interfaces" => o.interfaces = value().parse().expect("--interfaces N"),
            "--max-groups" => o.max_groups = value().parse().expect("--max-groups N"),
            "--vpcs" => o.vpcs = value().parse().expect("--vpcs N"),
            "--max-rps" => o.max_rps = value().parse().expect("--max-rps F"),
            "--calls" => {
                o.calls = true;
                i += 1;
                continue;
            }
            "--daemon" => {
                o.daemon = true;
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

fn gid(i: usize) -> String {
    format!("sg-bench{i:07}")
}

/// The rules of group `i`, in the API's own fields.
fn rules_of(i: usize, groups: usize) -> Vec<Permission> {
    let p = |id: String, dir: &str, proto: &str, ports: &str, policy: &str, prio: u8| Permission {
        security_group_rule_id: Some(id),
        direction: Some(dir.into()),
        ip_protocol: Some(proto.into()),
        port_range: Some(ports.into()),
        policy: Some(policy.into()),
        priority: Some(prio.to_string()),
        ..Permission::default()
    };
    let bastion = gid((i * 7 + 13) % groups);
    let mut rules = vec![
        Permission {
            source_cidr_ip: Some("192.168.0.0/16".into()),
            ..p(
                format!("sgr-{i}-https"),
                "ingress",
                "TCP",
                "443/443",
                "Accept",
                10,
            )
        },
        Permission {
            source_group_id: Some(bastion.clone()),
            ..p(
                format!("sgr-{i}-ssh"),
                "ingress",
                "TCP",
                "22/22",
                "Accept",
                20,
            )
        },
        Permission {
            source_group_id: Some(bastion),
            ..p(
                format!("sgr-{i}-telnet"),
                "ingress",
                "TCP",
                "23/23",
                "Drop",
                1,
            )
        },
        Permission {
            dest_cidr_ip: Some("0.0.0.0/0".into()),
            ..p(
                format!("sgr-{i}-out"),
                "egress",
                "ALL",
                "-1/-1",
                "Accept",
                100,
            )
        },
    ];
    if i % 20 == 0 {
        rules.push(Permission {
            source_group_id: Some(gid(i)),
            ..p(
                format!("sgr-{i}-self"),
                "ingress",
                "TCP",
                "8080/8080",
                "Accept",
                5,
            )
        });
    }
    if i % 20 == 1 {
        rules.push(Permission {
            source_cidr_ip: Some("10.0.0.0/8".into()),
            ..p(
                format!("sgr-{i}-wall"),
                "ingress",
                "ALL",
                "-1/-1",
                "Drop",
                1,
            )
        });
        rules.push(Permission {
            source_cidr_ip: Some("10.0.0.0/8".into()),
            ..p(
                format!("sgr-{i}-all"),
                "ingress",
                "ALL",
                "-1/-1",
                "Accept",
                2,
            )
        });
    }
    rules
}

fn policy_of(i: usize) -> Policy {
    if i % 100 == 50 {
        Policy::Accept
    } else {
        Policy::Drop
    }
}

/// Interface `n`: its address and 1..=max groups (deterministic).
fn interface(
    n: usize,
    o: &Options,
    rng: &mut fastrand::Rng,
) -> (String, String, Vec<String>, usize) {
    let count = rng.usize(1..=o.max_groups);
    let mut groups: Vec<String> = (0..count).map(|_| gid(rng.usize(0..o.groups))).collect();
    groups.sort();
    groups.dedup();
    let address = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    (format!("eni-bench{n:07}"), address, groups, n % o.vpcs)
}

fn main() {
    let o = options();
    let mut rng = fastrand::Rng::with_seed(19);
    let interfaces: Vec<(String, String, Vec<String>, usize)> = (0..o.interfaces)
        .map(|n| interface(n, &o, &mut rng))
        .collect();

    let before_estate = LIVE.load(Ordering::Relaxed);
    let mut estate = Estate::default();
    for i in 0..o.groups {
        estate.groups.insert(
            gid(i),
            GroupState {
                policy: Some(policy_of(i)),
                rules: Ok(rules_of(i, o.groups).iter().map(Rule::parse).collect()),
            },
        );
    }
    for (id, address, groups, _) in &interfaces {
        estate.members.push(Member {
            id: id.clone(),
            addresses: vec![address.parse().expect("address")],
            groups: groups.clone(),
        });
    }
    let estate_bytes = LIVE.load(Ordering::Relaxed) - before_estate;

    let declared: Vec<String> = (0..o.groups)
        .filter(|&i| policy_of(i) == Policy::Drop)
        .map(gid)
        .collect();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let (cpu0, wall0) = (cpu(), Instant::now());
    let analysis = Analysis::new(&estate);
    let verdicts: Vec<_> = declared.iter().map(|g| analysis.check(g)).collect();
    let (cpu1, wall1) = (cpu(), Instant::now());
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let by = |s: Status| verdicts.iter().filter(|v| v.status == s).count();
    let memberships: usize = interfaces.iter().map(|i| i.2.len()).sum();
    println!(
        "estate: {} groups ({} declared Drop), {} interfaces, {} memberships ({:.1} per interface), {} rules",
        o.groups,
        declared.len(),
        o.interfaces,
        memberships,
        memberships as f64 / o.interfaces as f64,
        estate.groups.values().map(|g| g.rules.as_ref().map_or(0, Vec::len)).sum::<usize>()
    );
    println!(
        "analysis: CPU {:.3} s, wall {:.3} s; extra peak memory {:.1} MiB (the estate itself {:.1} MiB)",
        (cpu1 - cpu0).as_secs_f64(),
        (wall1 - wall0).as_secs_f64(),
        mib(peak),
        mib(estate_bytes)
    );
    println!(
        "verdicts: {} isolated, {} not isolated, {} unknown; {} paths",
        by(Status::Isolated),
        by(Status::NotIsolated),
        by(Status::Unknown),
        verdicts.iter().map(|v| v.paths.len()).sum::<usize>()
    );
    // An isolated declared group with members, none of whose members is in a group with the
    // priority-1 wall (which would shadow the SSH rule the daemon run adds): where it opens a path.
    let walled = |g: &String| {
        g.trim_start_matches("sg-bench")
            .parse::<usize>()
            .is_ok_and(|i| i % 20 == 1)
    };
    let quiet = declared
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.status == Status::Isolated && v.members >= 2)
        .map(|(g, _)| g)
        .find(|g| {
            estate
                .members
                .iter()
                .filter(|m| m.groups.contains(g))
                .all(|m| !m.groups.iter().any(walled))
        })
        .cloned();
    drop(analysis);
    if o.calls {
        calls(&o, &interfaces, declared.len());
    }
    if o.daemon {
        match quiet {
            Some(g) => daemon(&o, &interfaces, &g),
            None => {
                println!("daemon: no isolated declared group with two members to open a path in")
            }
        }
    }
}

/// The real daemon against the simulator holding the estate: the time from an
/// `AuthorizeSecurityGroup` push (a console user adding SSH from `group` to itself) to the warning.
fn daemon(o: &Options, interfaces: &[(String, String, Vec<String>, usize)], group: &str) {
    use std::io::BufRead;
    let (seed, dir) = sim_estate(o, interfaces);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = sgpolicy_sim::Simulator::new(sgpolicy_sim::Seed::from_yaml(&seed).expect("seed"));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = sim.clone();
    rt.spawn(async move { server.serve(listener, std::future::pending()).await });
    let events = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let token = dir.join("events-token");
    std::fs::write(&token, "bench-token\n").expect("token file");
    let policies = dir.join("policies");
    let target: sgpolicy_sim::PushTarget = serde_json::from_value(serde_json::json!({
        "url": format!("http://{events}/events"), "token": "bench-token"}))
    .expect("a push target");
    sim.set_eventbridge(sgpolicy_sim::EventBridgeConfig {
        targets: vec![target],
    })
    .expect("loopback target");
    let started = Instant::now();
    let mut child = std::process::Command::new(sgpolicy_bin())
        .args(["--policies", policies.to_str().expect("utf-8")])
        .args([
            "--interval",
            "1h",
            "--events-poll",
            "0",
            "--no-report-ungoverned",
        ])
        .args(["--events-addr", &events.to_string()])
        .args(["--events-token-file", token.to_str().expect("utf-8")])
        .args(["--max-rps", &o.max_rps.to_string(), "--concurrency", "32"])
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret")
        .env("ALIBABA_CLOUD_ENDPOINT_ECS", &url)
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("RUST_LOG", "sgpolicy=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the daemon");
    let (lines_tx, lines) = std::sync::mpsc::channel::<(Instant, String)>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str, want: &dyn Fn(&str) -> bool| -> Option<(Instant, String)> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while let Ok((at, line)) =
            lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if want(&line) {
                return Some((at, line));
            }
        }
        println!("daemon: never saw {what}");
        None
    };
    let Some((ready, _)) = wait_for("the start-up pass", &|l| {
        l.contains("pass finished") && l.contains("startup")
    }) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    println!(
        "daemon: start-up pass (with the isolation check) done {:.1} s after launch",
        (ready - started).as_secs_f64()
    );
    let rule: sgpolicy_sim::SeedRule = serde_json::from_value(serde_json::json!({
        "Direction": "ingress", "IpProtocol": "TCP", "PortRange": "22/22", "SourceGroupId": group}))
    .expect("rule");
    let bob = sgpolicy_sim::ConsoleActor {
        user_name: Some("bob".into()),
        ..sgpolicy_sim::ConsoleActor::default()
    };
    let before = sim.call_counts().by_action;
    // EventBridge delivers from the runtime the simulator serves on.
    let _inside = rt.enter();
    let pushed = Instant::now();
    sim.add_rule(
        sgpolicy_sim::DEFAULT_ACCOUNT,
        "cn-hangzhou",
        group,
        &rule,
        Some(&bob),
    )
    .expect("the rule is added");
    println!("daemon: a console user (ram-user bob) adds tcp 22/22 from {group} to {group}");
    let needle = format!("to {group}: members of {group} reach each other on tcp 22/22");
    if let Some((warned, _)) = wait_for("the warning", &|l| {
        l.contains("WARN") && l.contains(&needle)
    }) {
        let checked = wait_for("the re-check line", &|l| l.contains("isolation re-checked"));
        println!(
            "daemon: AuthorizeSecurityGroup push to the warning naming ram-user bob: {:.3} s ({} interfaces in the group's VPC listed, the estate's {} groups)",
            (warned - pushed).as_secs_f64(),
            interfaces.len(),
            o.groups
        );
        if let Some((_, line)) = checked {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .unwrap_or("?")
                    .to_string()
            };
            println!(
                "daemon: the re-check: {} declared groups whose members share {group} ({} not isolated), {} calls, {} ms",
                field("scope="),
                field("not_isolated="),
                field("api_calls="),
                field("duration_ms=")
            );
            let after = sim.call_counts().by_action;
            let since: std::collections::BTreeMap<&String, u64> = after
                .iter()
                .map(|(a, n)| (a, n - before.get(a).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect();
            println!("daemon: the simulator's calls from the push to the re-check: {since:?}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary next to this example (`target/<profile>/sgpolicy`).
fn sgpolicy_bin() -> std::path::PathBuf {
    std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("sgpolicy")
}

/// The real binary against the simulator holding the same estate: its calls by action against the
/// formula (docs/scale.md).
fn calls(o: &Options, interfaces: &[(String, String, Vec<String>, usize)], declared: usize) {
    let (seed, root) = sim_estate(o, interfaces);
    let dir = root.join("policies");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = sgpolicy_sim::Simulator::new(sgpolicy_sim::Seed::from_yaml(&seed).expect("seed"));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = sim.clone();
    rt.spawn(async move { server.serve(listener, std::future::pending()).await });
    let started = Instant::now();
    let out = std::process::Command::new(sgpolicy_bin())
        .args([
            "--policies",
            dir.to_str().expect("utf-8"),
            "--once",
            "--dry-run",
            "--check-isolation",
            "--output",
            "json",
        ])
        .args(["--max-rps", &o.max_rps.to_string(), "--concurrency", "32"])
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret")
        .env("ALIBABA_CLOUD_ENDPOINT_ECS", &url)
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .output()
        .expect("run sgpolicy");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let counts = sim.call_counts().by_action;
    let pages = |n: usize, per: usize| n.div_ceil(per);
    let per_vpc: Vec<usize> = (0..o.vpcs)
        .map(|v| interfaces.iter().filter(|x| x.3 == v).count())
        .collect();
    let formula_attr = o.groups; // every group is declared; under 1,000 rules each: one page
    let formula_enis: usize = per_vpc.iter().map(|&n| pages(n, 500)).sum();
    println!(
        "calls ({:.1} s wall, exit {}): DescribeSecurityGroups {} (formula {}), DescribeSecurityGroupAttribute {} (formula {}), DescribeNetworkInterfaces {} (formula {}), DescribePrefixListAttributes {} (formula 0); the agent reports {}",
        started.elapsed().as_secs_f64(),
        out.status.code().unwrap_or(-1),
        counts.get("DescribeSecurityGroups").copied().unwrap_or(0),
        pages(o.groups, 100),
        counts.get("DescribeSecurityGroupAttribute").copied().unwrap_or(0),
        formula_attr,
        counts.get("DescribeNetworkInterfaces").copied().unwrap_or(0),
        formula_enis,
        counts.get("DescribePrefixListAttributes").copied().unwrap_or(0),
        doc["apiCalls"]
    );
    println!(
        "the agent's verdicts: {} checked, {} not isolated, {} unknown",
        declared, doc["summary"]["notIsolated"], doc["summary"]["isolationUnknown"]
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The simulator's seed holding the estate, and a temporary folder whose `policies/` declares
/// every group.
fn sim_estate(
    o: &Options,
    interfaces: &[(String, String, Vec<String>, usize)],
) -> (String, std::path::PathBuf) {
    use std::fmt::Write;
    let mut seed =
        String::from("accessKeys:\n  - {id: testid, secret: testsecret}\nsecurityGroups:\n");
    // A group lives in the VPC of its first member, or the first VPC.
    let mut vpc_of = std::collections::HashMap::new();
    for (_, _, groups, vpc) in interfaces {
        for g in groups {
            vpc_of.entry(g.clone()).or_insert(*vpc);
        }
    }
    for i in 0..o.groups {
        let _ = writeln!(
            seed,
            "  - id: {}\n    region: cn-hangzhou\n    innerAccessPolicy: {}\n    vpcId: vpc-bench{}\n    permissions:",
            gid(i),
            policy_of(i).as_str(),
            vpc_of.get(&gid(i)).copied().unwrap_or(0)
        );
        for r in rules_of(i, o.groups) {
            let v = serde_json::to_value(PermissionYaml(&r)).expect("rule");
            let _ = writeln!(seed, "      - {v}");
        }
    }
    seed.push_str("networkInterfaces:\n");
    for (id, address, groups, vpc) in interfaces {
        let _ = writeln!(
            seed,
            "  - {{NetworkInterfaceId: {id}, region: cn-hangzhou, VpcId: vpc-bench{vpc}, InstanceId: i-{id}, Type: Primary, Status: InUse, PrivateIpAddress: {address}, SecurityGroupIds: [{}]}}",
            groups.join(", ")
        );
    }
    let dir = tempfile_dir();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).expect("policy folder");
    let mut policy = String::from("region: cn-hangzhou\ngroups:\n");
    for i in 0..o.groups {
        let _ = writeln!(
            policy,
            "  - {{id: {}, innerAccessPolicy: {}}}",
            gid(i),
            policy_of(i).as_str()
        );
    }
    std::fs::write(policies.join("bench.yaml"), policy).expect("policy file");
    (seed, dir)
}

/// A rule as the seed's flow mapping: only the fields that are set.
struct PermissionYaml<'a>(&'a Permission);

impl serde::Serialize for PermissionYaml<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.0;
        let mut m = s.serialize_map(None)?;
        for (k, v) in [
            ("SecurityGroupRuleId", &p.security_group_rule_id),
            ("Direction", &p.direction),
            ("IpProtocol", &p.ip_protocol),
            ("PortRange", &p.port_range),
            ("Policy", &p.policy),
            ("SourceCidrIp", &p.source_cidr_ip),
            ("SourceGroupId", &p.source_group_id),
            ("DestCidrIp", &p.dest_cidr_ip),
        ] {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        if let Some(n) = p.priority.as_deref().and_then(|v| v.parse::<u8>().ok()) {
            m.serialize_entry("Priority", &n)?;
        }
        m.end()
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sgpolicy-bench-isolation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
