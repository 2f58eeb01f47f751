//! The isolation check end to end: the real binary over HTTP against the simulator seeded with rules,
//! network interfaces and prefix lists. The JSON, text and Markdown outputs, the exit codes of
//! `--require-isolation`, and the exact calls (counted by action).

use crate::harness::*;
use sgpolicy_sim::Policy::Drop;

const HZ: &str = "cn-hangzhou";

/// sg-web: in sync, but members reach each other on SSH through a rule whose source is the group
/// itself. sg-app: its members share sg-shared, an Accept group no file governs. sg-db: isolated (a
/// rule from elsewhere, a drop from the group itself). sg-big: isolated, with 1,001 rules (two pages
/// of 1,000). `blind` may not list interfaces.
fn seed() -> String {
    let mut s = String::from(
        r#"
accessKeys:
  - {id: testid, secret: testsecret}
  - {id: blind, secret: blindsecret, deniedActions: [DescribeNetworkInterfaces]}
prefixLists:
  - {PrefixListId: pl-office, region: cn-hangzhou, AddressFamily: IPv4, Entries: [192.168.0.0/24]}
securityGroups:
  - id: sg-web
    region: cn-hangzhou
    innerAccessPolicy: Drop
    vpcId: vpc-1
    permissions:
      - {SecurityGroupRuleId: sgr-ssh, Direction: ingress, IpProtocol: TCP, PortRange: 22/22, SourceGroupId: sg-web}
  - id: sg-db
    region: cn-hangzhou
    innerAccessPolicy: Drop
    vpcId: vpc-1
    permissions:
      - {SecurityGroupRuleId: sgr-mysql, Direction: ingress, IpProtocol: TCP, PortRange: 3306/3306, SourceGroupId: sg-web}
      - {SecurityGroupRuleId: sgr-office, Direction: ingress, IpProtocol: TCP, PortRange: 3306/3306, SourcePrefixListId: pl-office}
      - {SecurityGroupRuleId: sgr-wall, Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, SourceGroupId: sg-db, Policy: Drop}
  - {id: sg-app, region: cn-hangzhou, innerAccessPolicy: Drop, vpcId: vpc-1}
  - {id: sg-shared, region: cn-hangzhou, innerAccessPolicy: Accept, vpcId: vpc-1}
  - id: sg-big
    region: cn-hangzhou
    innerAccessPolicy: Drop
    vpcId: vpc-2
    permissions:
"#,
    );
    for i in 0..1001 {
        s.push_str(&format!(
            "      - {{Direction: ingress, IpProtocol: TCP, PortRange: {p}/{p}, SourceCidrIp: 172.16.0.0/12}}\n",
            p = 1000 + i
        ));
    }
    s.push_str(
        r#"networkInterfaces:
  - {NetworkInterfaceId: eni-web1, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-1, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-web]}
  - {NetworkInterfaceId: eni-web2, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-2, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.2, SecurityGroupIds: [sg-web]}
  - {NetworkInterfaceId: eni-db1, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-3, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.3, SecurityGroupIds: [sg-db]}
  - {NetworkInterfaceId: eni-db2, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-4, Type: Secondary, Status: InUse, PrivateIpAddress: 10.0.0.4, SecurityGroupIds: [sg-db]}
  - {NetworkInterfaceId: eni-app1, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-5, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.5, SecurityGroupIds: [sg-app, sg-shared]}
  - {NetworkInterfaceId: eni-app2, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-6, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.6, SecurityGroupIds: [sg-app, sg-shared]}
  - {NetworkInterfaceId: eni-big1, region: cn-hangzhou, VpcId: vpc-2, InstanceId: i-7, Type: Primary, Status: InUse, PrivateIpAddress: 10.1.0.1, SecurityGroupIds: [sg-big]}
  - {NetworkInterfaceId: eni-big2, region: cn-hangzhou, VpcId: vpc-2, InstanceId: i-8, Type: Primary, Status: InUse, PrivateIpAddress: 10.1.0.2, SecurityGroupIds: [sg-big]}
"#,
    );
    s
}

fn folder(ids: &[&str]) -> Folder {
    Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .groups(ids.iter().copied(), Drop)
            .yaml(),
    )
}

fn count(sim: &Sim, action: &str) -> u64 {
    sim.sim
        .call_counts()
        .by_action
        .get(action)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_plan_with_the_check_names_the_path_through_a_self_referencing_rule_and_a_shared_accept_group(
) {
    let sim = Sim::start_yaml(&seed()).await;
    let f = folder(&["sg-web", "sg-db", "sg-app", "sg-big"]);
    let run = once(&sim, &f, &["--dry-run", "--check-isolation"]).await;
    assert_eq!(
        run.code, 0,
        "the check alone never fails a run: {}",
        run.stderr
    );
    let web = run.group("sg-web");
    assert_eq!(
        web["outcome"], "in-sync",
        "the flag is in sync: only the check sees the problem"
    );
    assert_eq!(web["isolation"]["status"], "not-isolated");
    assert_eq!(web["isolation"]["members"], 2);
    let path = &web["isolation"]["paths"][0];
    assert_eq!(
        (
            &path["kind"],
            &path["group"],
            &path["ruleId"],
            &path["protocol"],
            &path["ports"],
            &path["source"]
        ),
        (
            &"ingress-rule".into(),
            &"sg-web".into(),
            &"sgr-ssh".into(),
            &"tcp".into(),
            &"22/22".into(),
            &"sg-web".into()
        )
    );
    let app = run.group("sg-app");
    assert_eq!(app["isolation"]["status"], "not-isolated");
    assert_eq!(app["isolation"]["paths"][0]["kind"], "shared-group");
    assert_eq!(app["isolation"]["paths"][0]["group"], "sg-shared");
    assert_eq!(run.group("sg-db")["isolation"]["status"], "isolated");
    assert_eq!(run.group("sg-big")["isolation"]["status"], "isolated");
    let doc = run.json();
    assert_eq!(doc["summary"]["notIsolated"], 2);
    assert_eq!(doc["summary"]["isolationUnknown"], 0);

    // The exact calls: one listing; one attribute read per declared group plus the second page of
    // sg-big's 1,001 rules (pages of 1,000) and sg-shared, which members of sg-app belong to; one
    // interface listing per VPC; the prefix list sg-db's rule names, once.
    assert_eq!(count(&sim, "DescribeSecurityGroups"), 1);
    assert_eq!(count(&sim, "DescribeSecurityGroupAttribute"), 4 + 1 + 1);
    assert_eq!(count(&sim, "DescribeNetworkInterfaces"), 2);
    assert_eq!(count(&sim, "DescribePrefixListAttributes"), 1);
    assert_eq!(doc["apiCalls"]["DescribeSecurityGroupAttribute"], 6);
    assert_eq!(doc["apiCalls"]["DescribeNetworkInterfaces"], 2);
    assert_eq!(sim.writes().len(), 0);
}

#[tokio::test]
async fn without_the_check_the_calls_are_those_of_a_plain_pass_and_isolation_is_null() {
    let sim = Sim::start_yaml(&seed()).await;
    let f = folder(&["sg-web", "sg-big"]);
    let run = once(&sim, &f, &["--dry-run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.group("sg-web")["isolation"].is_null());
    assert!(run.json()["summary"].get("notIsolated").is_none());
    assert_eq!(
        count(&sim, "DescribeSecurityGroupAttribute"),
        2,
        "one small page each"
    );
    assert_eq!(count(&sim, "DescribeNetworkInterfaces"), 0);
}

#[tokio::test]
async fn require_isolation_exits_1_for_a_group_not_isolated_even_with_detailed_exitcode_and_0_when_all_are(
) {
    let sim = Sim::start_yaml(&seed()).await;
    let strict = ["--dry-run", "--detailed-exitcode", "--require-isolation"];
    let run = once(&sim, &folder(&["sg-web", "sg-db"]), &strict).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("1 group(s) declared Drop are not proven isolated"),
        "{}",
        run.stderr
    );
    let run = once(&sim, &folder(&["sg-db", "sg-big"]), &strict).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = once(&sim, &folder(&["sg-db"]), &["--require-isolation"]).await;
    assert_eq!(run.code, 0, "an apply with nothing to do: {}", run.stderr);
}

#[tokio::test]
async fn a_key_that_may_not_list_interfaces_leaves_the_group_unknown_naming_the_permission() {
    let sim = Sim::start_yaml(&seed()).await;
    let dir = folder(&["sg-db"]);
    let path = dir.path().to_str().unwrap().to_string();
    let args = [
        "--policies",
        &path,
        "--once",
        "--dry-run",
        "--output",
        "json",
        "--check-isolation",
    ];
    let blind = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", Some("blind")),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", Some("blindsecret")),
    ];
    let run = run(&sim, &args, &blind).await;
    assert_eq!(
        run.code, 0,
        "a refused check read is no pass error: {}",
        run.stderr
    );
    let iso = &run.group("sg-db")["isolation"];
    assert_eq!(iso["status"], "unknown");
    let reason = iso["unknown"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("missing permission ecs:DescribeNetworkInterfaces"),
        "{reason}"
    );
    let mut strict: Vec<&str> = args.to_vec();
    strict.push("--require-isolation");
    let run = crate::harness::run(&sim, &strict, &blind).await;
    assert_eq!(
        run.code, 1,
        "unknown is not proven isolated: {}",
        run.stderr
    );
}

#[tokio::test]
async fn text_and_markdown_say_each_path_in_one_sentence_with_the_file_and_line() {
    let sim = Sim::start_yaml(&seed()).await;
    let f = folder(&["sg-web", "sg-db"]);
    let dir = f.path().to_str().unwrap().to_string();
    let text = run(
        &sim,
        &[
            "--policies",
            &dir,
            "--once",
            "--dry-run",
            "--check-isolation",
        ],
        &[],
    )
    .await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(
            "prod.yaml:3:5: cn-hangzhou/sg-web is NOT isolated (2 members, declared Drop)"
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("members reach each other on tcp 22/22 through rule sgr-ssh of sg-web (source: the group itself"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("1 not isolated, 0 isolation unknown"),
        "{}",
        text.stdout
    );
    let md = run(
        &sim,
        &[
            "--policies",
            &dir,
            "--once",
            "--dry-run",
            "--check-isolation",
            "--output",
            "markdown",
        ],
        &[],
    )
    .await;
    assert!(
        md.stdout
            .contains("**Isolation**: 2 group(s) declared Drop checked, 1 not isolated, 0 unknown"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout
            .contains("- `sg-web` (cn-hangzhou) **not isolated**"),
        "{}",
        md.stdout
    );
}
