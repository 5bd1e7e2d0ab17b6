//! docker-compose.yml and deploy/cluster.toml describe one cluster, and no Docker
//! engine runs where the tests do: so this reads both files and checks that they agree
//! the way `docker compose up` needs them to. The configuration is read by pluto's own
//! loader (`Config::load` + `cluster.validate()`), as every container reads it.
//!
//! Each check returns the problems it finds; the tests run every check on the real
//! files (no problem allowed) and on broken copies (the break must be reported), so
//! that a check that can never fail is itself caught.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use pluto_gateway::Config;
use pluto_gateway::config::{AuthBackend, Role};
use serde_yaml::Value;

const IMAGE: &str = "pluto:latest";
/// Where every pluto container finds the configuration, and what is mounted there.
const CONFIG_IN_CONTAINER: &str = "/etc/pluto/cluster.toml";
const CONFIG_ON_HOST: &str = "./deploy/cluster.toml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn config() -> Config {
    let config = Config::load(Some(&root().join("deploy/cluster.toml"))).unwrap();
    config.cluster.validate().unwrap();
    config
}

// --- reading compose values -----------------------------------------------------------

fn services(c: &Value) -> BTreeMap<String, Value> {
    c.get("services")
        .and_then(Value::as_mapping)
        .expect("docker-compose.yml has services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(string).collect())
        .unwrap_or_default()
}

fn keys(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Mapping(m)) => m.keys().filter_map(string).collect(),
        Some(Value::Sequence(s)) => s.iter().filter_map(string).collect(),
        _ => Vec::new(),
    }
}

fn command(svc: &Value) -> Vec<String> {
    strings(svc.get("command"))
}

/// The value of one environment variable, in either of compose's two spellings.
fn env(svc: &Value, key: &str) -> Option<String> {
    match svc.get("environment")? {
        Value::Mapping(m) => m.get(key).and_then(string),
        Value::Sequence(s) => s.iter().filter_map(Value::as_str).find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.to_owned())
        }),
        _ => None,
    }
}

#[derive(Debug)]
struct Mount {
    source: String,
    target: String,
    read_only: bool,
}

impl Mount {
    fn is_named_volume(&self) -> bool {
        !self.source.starts_with(['.', '/', '~'])
    }
}

fn mounts(svc: &Value) -> Vec<Mount> {
    strings(svc.get("volumes"))
        .iter()
        .map(|m| {
            let parts: Vec<&str> = m.split(':').collect();
            Mount {
                source: parts.first().copied().unwrap_or_default().to_owned(),
                target: parts.get(1).copied().unwrap_or_default().to_owned(),
                read_only: parts
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            }
        })
        .collect()
}

fn exposed(svc: &Value) -> BTreeSet<u16> {
    strings(svc.get("expose"))
        .iter()
        .filter_map(|p| p.split('/').next()?.parse().ok())
        .collect()
}

/// `ports:` entries as (host address, host port, container port).
fn published(svc: &Value) -> Vec<(String, u16, u16)> {
    strings(svc.get("ports"))
        .iter()
        .filter_map(|p| {
            let p = p.split('/').next()?;
            let parts: Vec<&str> = p.split(':').collect();
            let (ip, host, container) = match parts.as_slice() {
                [ip, host, container] => (*ip, *host, *container),
                [host, container] => ("0.0.0.0", *host, *container),
                _ => return None,
            };
            Some((ip.to_owned(), host.parse().ok()?, container.parse().ok()?))
        })
        .collect()
}

/// The fixed address a service has on any network.
fn ipv4(svc: &Value) -> Option<Ipv4Addr> {
    svc.get("networks")?
        .as_mapping()?
        .values()
        .find_map(|n| n.get("ipv4_address")?.as_str()?.parse().ok())
}

fn healthcheck(svc: &Value) -> Option<String> {
    let test = svc.get("healthcheck")?.get("test")?;
    match test {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(_) => Some(strings(Some(test)).join(" ")),
        _ => None,
    }
}

fn is_pluto(svc: &Value) -> bool {
    svc.get("image").and_then(Value::as_str) == Some(IMAGE)
}

/// Services running `pluto gateway`.
fn gateways(c: &Value) -> BTreeMap<String, Value> {
    services(c)
        .into_iter()
        .filter(|(_, s)| is_pluto(s) && command(s).first().map(String::as_str) == Some("gateway"))
        .collect()
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Worker => "worker",
        Role::Storage => "storage",
    }
}

/// `host:port` of a URL such as `postgres://user:pw@host:5432/db`.
fn url_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    let (host, port) = host_port.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

// --- the checks -----------------------------------------------------------------------

/// Every service, volume and network that is referenced is defined; every dependency
/// condition can be met; bind-mounted files and the build context exist.
fn check_references(c: &Value, repo: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let services = services(c);
    let volumes: BTreeSet<String> = keys(c.get("volumes")).into_iter().collect();
    let networks: BTreeSet<String> = keys(c.get("networks")).into_iter().collect();
    for (name, svc) in &services {
        if let Some(Value::Mapping(deps)) = svc.get("depends_on") {
            for (dep, how) in deps {
                let dep = string(dep).unwrap_or_default();
                let Some(target) = services.get(&dep) else {
                    problems.push(format!("{name} depends on {dep}, which is no service"));
                    continue;
                };
                match how.get("condition").and_then(Value::as_str) {
                    Some("service_healthy") if target.get("healthcheck").is_none() => problems
                        .push(format!(
                            "{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                        )),
                    Some("service_completed_successfully")
                        if target.get("restart").and_then(Value::as_str) != Some("no") =>
                    {
                        problems.push(format!(
                            "{name} waits for {dep} to complete, but {dep} is not a one-shot (restart: \"no\")"
                        ))
                    }
                    Some("service_healthy" | "service_completed_successfully" | "service_started") => {}
                    other => problems.push(format!("{name} → {dep}: condition {other:?}")),
                }
            }
        } else {
            for dep in keys(svc.get("depends_on")) {
                if !services.contains_key(&dep) {
                    problems.push(format!("{name} depends on {dep}, which is no service"));
                }
            }
        }
        for m in mounts(svc) {
            if m.is_named_volume() {
                if !volumes.contains(&m.source) {
                    problems.push(format!(
                        "{name} mounts volume {}, which is not defined",
                        m.source
                    ));
                }
            } else if !repo.join(&m.source).exists() {
                problems.push(format!("{name} mounts {}, which does not exist", m.source));
            }
        }
        for net in keys(svc.get("networks")) {
            if !networks.contains(&net) {
                problems.push(format!("{name} joins network {net}, which is not defined"));
            }
        }
        if let Some(context) = svc.get("build").and_then(Value::as_str) {
            if !repo.join(context).join("Dockerfile").exists() {
                problems.push(format!("{name} builds {context}, which has no Dockerfile"));
            }
        }
        if is_pluto(svc) && svc.get("build").is_none() {
            problems.push(format!(
                "{name} runs {IMAGE} but does not say how to build it"
            ));
        }
    }
    // A dependency cycle would keep `up` from starting anything.
    fn visit(
        n: &str,
        services: &BTreeMap<String, Value>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if path.iter().any(|p| p == n) {
            problems.push(format!("dependency cycle: {} → {n}", path.join(" → ")));
            return;
        }
        path.push(n.to_owned());
        if let Some(svc) = services.get(n) {
            for dep in keys(svc.get("depends_on")) {
                visit(&dep, services, path, done, problems);
            }
        }
        path.pop();
        done.insert(n.to_owned());
    }
    let mut done = BTreeSet::new();
    for name in services.keys() {
        visit(name, &services, &mut Vec::new(), &mut done, &mut problems);
    }
    problems
}

/// The nodes of the configuration are exactly the compose services that run
/// `pluto worker` / `pluto storage`, with the same name and role; every pluto process
/// is told its own name, reads the shared configuration and keeps its data in a
/// volume of its own.
fn check_nodes(c: &Value, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let services = services(c);
    let node_services: BTreeMap<&String, &Value> = services
        .iter()
        .filter(|(_, s)| {
            is_pluto(s)
                && matches!(
                    command(s).first().map(String::as_str),
                    Some("worker" | "storage")
                )
        })
        .collect();
    let in_config: BTreeSet<&String> = config.cluster.nodes.iter().map(|n| &n.name).collect();
    let in_compose: BTreeSet<&String> = node_services.keys().copied().collect();
    if in_config != in_compose {
        problems.push(format!(
            "cluster.toml nodes {in_config:?} but compose runs worker/storage services {in_compose:?}"
        ));
    }
    for node in &config.cluster.nodes {
        let Some(svc) = services.get(&node.name) else {
            problems.push(format!("node {} has no compose service", node.name));
            continue;
        };
        let cmd = command(svc);
        if cmd.first().map(String::as_str) != Some(role_name(node.role)) {
            problems.push(format!(
                "node {} is a {} in cluster.toml, but its service runs {cmd:?}",
                node.name,
                role_name(node.role)
            ));
        }
    }
    let mut data_volumes: BTreeMap<String, String> = BTreeMap::new();
    let gateways = gateways(c);
    for (name, svc) in node_services
        .iter()
        .map(|(n, s)| (*n, *s))
        .chain(gateways.iter())
    {
        if env(svc, "PLUTO_CLUSTER__NAME").as_deref() != Some(name.as_str()) {
            problems.push(format!(
                "{name}: PLUTO_CLUSTER__NAME = {:?}, not its own name",
                env(svc, "PLUTO_CLUSTER__NAME")
            ));
        }
        let cmd = command(svc);
        let config_arg = cmd
            .iter()
            .position(|a| a == "--config")
            .and_then(|i| cmd.get(i + 1));
        if config_arg.map(String::as_str) != Some(CONFIG_IN_CONTAINER) {
            problems.push(format!(
                "{name}: --config {config_arg:?}, not {CONFIG_IN_CONTAINER}"
            ));
        }
        let mounts = mounts(svc);
        if !mounts
            .iter()
            .any(|m| m.source == CONFIG_ON_HOST && m.target == CONFIG_IN_CONTAINER && m.read_only)
        {
            problems.push(format!(
                "{name} does not mount {CONFIG_ON_HOST} read-only at {CONFIG_IN_CONTAINER}"
            ));
        }
        let data_dir = env(svc, "PLUTO_DATA_DIR");
        match mounts
            .iter()
            .find(|m| Some(&m.target) == data_dir.as_ref() && m.is_named_volume())
        {
            Some(m) => {
                if let Some(other) = data_volumes.insert(m.source.clone(), name.clone()) {
                    problems.push(format!(
                        "{name} and {other} share the data volume {}",
                        m.source
                    ));
                }
            }
            None => problems.push(format!(
                "{name}: its data dir {data_dir:?} is not a volume of its own"
            )),
        }
    }
    for name in gateways.keys() {
        if in_config.contains(name) {
            problems.push(format!("gateway {name} is also a cluster node"));
        }
    }
    problems
}

/// Every address in cluster.toml is a node's own fixed address on the compose network
/// (or its service name) and a port its service exposes; PostgreSQL and Redis URLs
/// name their services.
fn check_addresses(c: &Value, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let services = services(c);
    let (subnet, ip_range) = network_ranges(c);
    let mut seen_ips: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for (name, svc) in &services {
        if let Some(ip) = ipv4(svc) {
            if let Some(other) = seen_ips.insert(ip, name.clone()) {
                problems.push(format!("{name} and {other} both have address {ip}"));
            }
            if !subnet.is_some_and(|(net, bits)| in_net(ip, net, bits)) {
                problems.push(format!(
                    "{name}: {ip} is outside the network's subnet {subnet:?}"
                ));
            }
            if ip_range.is_some_and(|(net, bits)| in_net(ip, net, bits)) {
                problems.push(format!(
                    "{name}: {ip} is inside ip_range {ip_range:?}, where Docker gives out addresses"
                ));
            }
        }
    }
    for node in &config.cluster.nodes {
        let Some(svc) = services.get(&node.name) else {
            continue; // check_nodes reports it
        };
        let ports = exposed(svc);
        let dialed = [("store", &node.store), ("replication", &node.replication)];
        let bound = [
            ("listen_store", node.listen_store.as_ref()),
            ("listen_replication", node.listen_replication.as_ref()),
        ];
        for (what, addr) in dialed
            .iter()
            .map(|(w, a)| (*w, Some(*a)))
            .chain(bound.iter().map(|(w, a)| (*w, *a)))
        {
            let Some(addr) = addr else { continue };
            let Some((host, port)) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            else {
                problems.push(format!("{}: {what} = {addr:?} is not host:port", node.name));
                continue;
            };
            let listening = what.starts_with("listen_");
            let names_it = match host.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => ipv4(svc) == Some(ip) || (listening && ip.is_unspecified()),
                Ok(IpAddr::V6(ip)) => listening && ip.is_unspecified(),
                Err(_) => host == node.name,
            };
            if !names_it {
                let owner = host
                    .parse::<Ipv4Addr>()
                    .ok()
                    .and_then(|ip| seen_ips.get(&ip).cloned());
                problems.push(format!(
                    "{}: {what} = {addr} is not service {}'s address ({:?}) but {owner:?}'s",
                    node.name,
                    node.name,
                    ipv4(svc)
                ));
            }
            // What others dial must be exposed; what the node binds must match too.
            if !ports.contains(&port) {
                problems.push(format!(
                    "{}: {what} port {port} is not exposed by its service ({ports:?})",
                    node.name
                ));
            }
        }
    }
    let mut urls = vec![(
        "throttle.redis_url",
        config.throttle.redis_url.clone(),
        "redis",
    )];
    if config.auth.backend == AuthBackend::Postgres {
        urls.push((
            "auth.postgres.url",
            config.auth.postgres.url.clone(),
            "postgres",
        ));
    }
    for (key, url, service) in urls {
        match url_host_port(&url) {
            Some((host, port)) => match services.get(&host) {
                Some(svc) if host == service => {
                    if !exposed(svc).contains(&port) {
                        problems.push(format!("{key}: {host} does not expose port {port}"));
                    }
                }
                _ => problems.push(format!(
                    "{key} = {url}: {host} is not the {service} service"
                )),
            },
            None => problems.push(format!("{key} = {url:?} has no host:port")),
        }
    }
    problems
}

/// An IPv4 network as (address, prefix length).
type Net = (Ipv4Addr, u8);

/// The compose network's subnet and the ip_range Docker assigns addresses from.
fn network_ranges(c: &Value) -> (Option<Net>, Option<Net>) {
    let parse = |v: Option<&Value>| -> Option<Net> {
        let (ip, bits) = v?.as_str()?.split_once('/')?;
        Some((ip.parse().ok()?, bits.parse().ok()?))
    };
    let config = c
        .get("networks")
        .and_then(Value::as_mapping)
        .and_then(|m| m.values().next())
        .and_then(|n| {
            n.get("ipam")?
                .get("config")?
                .as_sequence()?
                .first()
                .cloned()
        });
    match config {
        Some(cfg) => (parse(cfg.get("subnet")), parse(cfg.get("ip_range"))),
        None => (None, None),
    }
}

fn in_net(ip: Ipv4Addr, net: Ipv4Addr, bits: u8) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Each gateway publishes exactly the configured IMAP and IMAPS ports, which listen on
/// every interface of the container; no two services take the same host port.
fn check_gateway_ports(c: &Value, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listen = BTreeSet::new();
    for (key, value) in [
        ("listen.imap", &config.listen.imap),
        ("listen.imaps", &config.listen.imaps),
    ] {
        match value.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_unspecified() => {
                listen.insert(a.port());
            }
            Ok(a) => problems.push(format!(
                "{key} = {a}: a published port reaches only a listener on 0.0.0.0"
            )),
            Err(_) => problems.push(format!("{key} = {value:?} is not an address")),
        }
    }
    let gateways = gateways(c);
    if gateways.len() < 2 {
        problems.push(format!("{} gateway service(s), 2 wanted", gateways.len()));
    }
    for (name, svc) in &gateways {
        let container: BTreeSet<u16> = published(svc).iter().map(|p| p.2).collect();
        if container != listen {
            problems.push(format!(
                "{name} publishes container ports {container:?}, the gateways listen on {listen:?}"
            ));
        }
        let check = healthcheck(svc).unwrap_or_default();
        if !listen.iter().any(|p| check.contains(&p.to_string())) {
            problems.push(format!("{name}'s healthcheck {check:?} tries no IMAP port"));
        }
    }
    let mut host_ports: BTreeMap<(String, u16), String> = BTreeMap::new();
    for (name, svc) in services(c) {
        for (ip, host, _) in published(&svc) {
            if let Some(other) = host_ports.insert((ip.clone(), host), name.clone()) {
                problems.push(format!("{name} and {other} both publish {ip}:{host}"));
            }
        }
    }
    problems
}

/// The one-shot pki service makes certificates for exactly the cluster's nodes and the
/// gateways, into the volume that every pluto process reads them from.
fn check_pki(c: &Value, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let services = services(c);
    let Some(pki) = services.get("pki") else {
        return vec!["no pki service".into()];
    };
    let cmd = command(pki);
    let pki_dir = config.cluster.pki_dir.display().to_string();
    if cmd.first().map(String::as_str) != Some("pki") {
        problems.push(format!("the pki service runs {cmd:?}"));
    }
    let out = cmd
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| cmd.get(i + 1));
    if out != Some(&pki_dir) {
        problems.push(format!(
            "pki --out {out:?}, but cluster.pki_dir = {pki_dir}"
        ));
    }
    // The names are the positional arguments after the subcommand.
    let mut names = Vec::new();
    let mut args = cmd.iter().skip(1);
    while let Some(a) = args.next() {
        if a == "--out" || a == "--san" {
            args.next();
        } else if !a.starts_with("--") {
            names.push(a.clone());
        }
    }
    let unique: BTreeSet<String> = names.iter().cloned().collect();
    if unique.len() != names.len() {
        problems.push(format!("pki names repeat: {names:?}"));
    }
    let gateways = gateways(c);
    let wanted: BTreeSet<String> = config
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .chain(gateways.keys().cloned())
        .collect();
    if unique != wanted {
        problems.push(format!(
            "pki makes certificates for {unique:?}, the cluster needs {wanted:?}"
        ));
    }
    let pki_volume = mounts(pki)
        .into_iter()
        .find(|m| m.target == pki_dir && m.is_named_volume() && !m.read_only);
    let Some(pki_volume) = pki_volume else {
        problems.push(format!("the pki service writes no volume at {pki_dir}"));
        return problems;
    };
    for name in &wanted {
        let Some(svc) = services.get(name) else {
            continue;
        };
        if !mounts(svc)
            .iter()
            .any(|m| m.source == pki_volume.source && m.target == pki_dir && m.read_only)
        {
            problems.push(format!(
                "{name} does not mount the {} volume read-only at {pki_dir}",
                pki_volume.source
            ));
        }
        let waits = svc
            .get("depends_on")
            .and_then(|d| d.get("pki"))
            .and_then(|p| p.get("condition"))
            .and_then(Value::as_str);
        // Gateways wait for the nodes, which wait for pki.
        if !gateways.contains_key(name) && waits != Some("service_completed_successfully") {
            problems.push(format!("{name} does not wait for pki to complete"));
        }
    }
    problems
}

/// A node's healthcheck asks `pluto cluster status` about that node itself.
fn check_node_health(c: &Value, config: &Config) -> Vec<String> {
    let services = services(c);
    let mut problems = Vec::new();
    for node in &config.cluster.nodes {
        let Some(svc) = services.get(&node.name) else {
            continue;
        };
        let check = healthcheck(svc).unwrap_or_default();
        let wanted = format!("^{} +{} +yes", node.name, role_name(node.role));
        if !check.contains("pluto cluster status") || !check.contains(&wanted) {
            problems.push(format!(
                "{}: healthcheck {check:?} does not look for {wanted:?}",
                node.name
            ));
        }
    }
    problems
}

/// The Dockerfile builds only the `pluto` binary and ships it in a slim image that
/// exposes the ports the configuration uses.
fn check_dockerfile(text: &str, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    if froms
        .first()
        .map(|l| l.starts_with("FROM rust:1-bookworm AS "))
        != Some(true)
    {
        problems.push(format!("the builder is not rust:1-bookworm: {froms:?}"));
    }
    if froms.last() != Some(&"FROM debian:bookworm-slim") || froms.len() < 2 {
        problems.push(format!(
            "the final stage is not debian:bookworm-slim: {froms:?}"
        ));
    }
    if !text.contains("cargo build --release") || !text.contains("-p pluto-gateway") {
        problems.push("no `cargo build --release -p pluto-gateway`".into());
    }
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .map(str::trim);
    if user.is_none() || user == Some("root") || user == Some("0") {
        problems.push(format!("the image runs as {user:?}"));
    }
    let exposed: BTreeSet<u16> = text
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().filter_map(|p| p.parse().ok()))
        .collect();
    let mut wanted: BTreeSet<u16> = [&config.listen.imap, &config.listen.imaps]
        .iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok().map(|a| a.port()))
        .collect();
    for node in &config.cluster.nodes {
        for a in [&node.store, &node.replication] {
            if let Some(port) = a.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
                wanted.insert(port);
            }
        }
    }
    if !wanted.is_subset(&exposed) {
        problems.push(format!("EXPOSE {exposed:?} lacks some of {wanted:?}"));
    }
    problems
}

fn all_checks(c: &Value, config: &Config) -> Vec<String> {
    let mut p = check_references(c, &root());
    p.extend(check_nodes(c, config));
    p.extend(check_addresses(c, config));
    p.extend(check_gateway_ports(c, config));
    p.extend(check_pki(c, config));
    p.extend(check_node_health(c, config));
    p
}

fn assert_clean(problems: Vec<String>) {
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// --- the real files -----------------------------------------------------------------

#[test]
fn the_cluster_config_loads_with_pluto_s_own_loader() {
    let config = config();
    let names: Vec<(&str, Role)> = config
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role))
        .collect();
    assert_eq!(
        names,
        [
            ("worker1", Role::Worker),
            ("worker2", Role::Worker),
            ("storage1", Role::Storage)
        ]
    );
    assert_eq!(config.auth.backend, AuthBackend::Postgres);
    assert!(!config.throttle.redis_url.is_empty());
    // Each node finds itself as its container will, by PLUTO_CLUSTER__NAME.
    for node in &config.cluster.nodes {
        let mut me = config.cluster.clone();
        me.name = node.name.clone();
        assert_eq!(me.me().map(|n| n.id), Some(node.id));
        assert!(me.cert().starts_with("/etc/pluto/pki"));
    }
}

#[test]
fn every_referenced_service_volume_and_network_exists() {
    assert_clean(check_references(&compose(), &root()));
}

#[test]
fn cluster_nodes_are_the_compose_services() {
    assert_clean(check_nodes(&compose(), &config()));
}

#[test]
fn every_cluster_address_is_its_service_and_an_exposed_port() {
    assert_clean(check_addresses(&compose(), &config()));
}

#[test]
fn gateways_publish_the_configured_imap_ports() {
    assert_clean(check_gateway_ports(&compose(), &config()));
}

#[test]
fn pki_makes_certificates_for_exactly_the_cluster() {
    assert_clean(check_pki(&compose(), &config()));
}

#[test]
fn node_healthchecks_ask_about_their_own_node() {
    assert_clean(check_node_health(&compose(), &config()));
}

#[test]
fn the_dockerfile_builds_a_slim_image_with_the_ports() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert_clean(check_dockerfile(&text, &config()));
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(
        ignore
            .lines()
            .any(|l| l.trim() == "target/" || l.trim() == "target")
    );
}

// --- broken copies are caught ---------------------------------------------------------

fn service_mut<'a>(c: &'a mut Value, name: &str) -> &'a mut Value {
    c.get_mut("services").unwrap().get_mut(name).unwrap()
}

/// Runs every check on a broken copy; `expect` must appear in some problem.
fn caught(c: &Value, config: &Config, expect: &str) {
    let problems = all_checks(c, config);
    assert!(
        problems.iter().any(|p| p.contains(expect)),
        "the break was not reported as {expect:?}; problems: {problems:#?}"
    );
}

#[test]
fn a_node_address_pointing_at_another_service_is_caught() {
    let mut config = config();
    config.cluster.nodes[1].store = config.cluster.nodes[0].store.clone();
    caught(&compose(), &config, "worker2: store");
}

#[test]
fn an_unexposed_port_is_caught() {
    let mut c = compose();
    let expose = service_mut(&mut c, "storage1").get_mut("expose").unwrap();
    *expose = serde_yaml::from_str("[\"7001\"]").unwrap();
    caught(&c, &config(), "replication port 7002 is not exposed");
}

#[test]
fn a_wrong_node_name_is_caught() {
    let mut c = compose();
    let env = service_mut(&mut c, "worker2")
        .get_mut("environment")
        .unwrap();
    env["PLUTO_CLUSTER__NAME"] = Value::from("worker1");
    caught(&c, &config(), "worker2: PLUTO_CLUSTER__NAME");
}

#[test]
fn a_missing_certificate_is_caught() {
    let mut c = compose();
    let cmd = service_mut(&mut c, "pki").get_mut("command").unwrap();
    let seq = cmd.as_sequence_mut().unwrap();
    seq.retain(|v| v.as_str() != Some("gw2"));
    caught(&c, &config(), "pki makes certificates for");
}

#[test]
fn a_gateway_publishing_the_wrong_container_port_is_caught() {
    let mut c = compose();
    let ports = service_mut(&mut c, "gw2").get_mut("ports").unwrap();
    *ports = serde_yaml::from_str("[\"127.0.0.1:1144:143\", \"127.0.0.1:1994:1993\"]").unwrap();
    caught(&c, &config(), "gw2 publishes container ports");
}

#[test]
fn a_dependency_on_a_missing_service_is_caught() {
    let mut c = compose();
    let deps = service_mut(&mut c, "gw1").get_mut("depends_on").unwrap();
    deps["worker3"] = serde_yaml::from_str("{condition: service_healthy}").unwrap();
    caught(&c, &config(), "gw1 depends on worker3, which is no service");
}

#[test]
fn a_node_missing_from_compose_is_caught() {
    let mut config = config();
    let mut extra = config.cluster.nodes[0].clone();
    extra.name = "worker3".into();
    extra.id = 9;
    config.cluster.nodes.push(extra);
    caught(&compose(), &config, "node worker3 has no compose service");
}

#[test]
fn a_dockerfile_running_as_root_is_caught() {
    let text = std::fs::read_to_string(root().join("Dockerfile"))
        .unwrap()
        .replace("USER pluto", "USER root");
    let problems = check_dockerfile(&text, &config());
    assert!(
        problems.iter().any(|p| p.contains("runs as")),
        "{problems:?}"
    );
}
