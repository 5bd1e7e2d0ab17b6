//! `docs/ARCHITECTURE.md`'s crate table says which pluto crates each crate depends on,
//! and that arrows only point down the table, but for one: `pluto-backends` runs the
//! conformance suite (`pluto-conformance`, which depends on it) as a dev-dependency. This reads the table and every member's
//! `Cargo.toml` and checks that they agree, so the document cannot drift from the
//! manifests. Each check is also run on a broken copy, so a check that can never fail
//! is itself caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One row of the table: crate name → (normal pluto deps, dev pluto deps), in table order.
type Table = Vec<(String, BTreeSet<String>, BTreeSet<String>)>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// The `pluto-…` names written in backticks in `text`.
fn pluto_names(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.starts_with("pluto-"))
        .map(str::to_owned)
        .collect()
}

fn parse_table(doc: &str) -> Table {
    doc.lines()
        .filter(|l| l.starts_with("| `pluto-"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // ["", crate (folder), owns, deps, ""]
            let name = pluto_names(cells[1]).into_iter().next().unwrap();
            let deps_cell = cells[cells.len() - 2];
            let (normal, dev) = match deps_cell.split_once("(dev:") {
                Some((normal, dev)) => (pluto_names(normal), pluto_names(dev)),
                None => (pluto_names(deps_cell), BTreeSet::new()),
            };
            (name, normal, dev)
        })
        .collect()
}

/// Every workspace member: crate name → (normal pluto deps, dev pluto deps).
fn manifests() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let root = root();
    let workspace: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    members
        .iter()
        .map(|m| {
            let path = root.join(m.as_str().unwrap()).join("Cargo.toml");
            let manifest: toml::Table =
                toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let name = manifest["package"]["name"].as_str().unwrap().to_owned();
            let deps = |section: &str| -> BTreeSet<String> {
                manifest
                    .get(section)
                    .and_then(|d| d.as_table())
                    .map(|d| {
                        d.keys()
                            .filter(|k| k.starts_with("pluto-"))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default()
            };
            (name, (deps("dependencies"), deps("dev-dependencies")))
        })
        .collect()
}

/// The one arrow allowed to point up the table: (crate, its dev-dependency).
const UPWARD_DEV: (&str, &str) = ("pluto-backends", "pluto-conformance");

/// What is wrong between the table and the manifests.
fn problems(
    table: &Table,
    manifests: &BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let listed: BTreeSet<&String> = table.iter().map(|(name, ..)| name).collect();
    for name in manifests.keys() {
        if !listed.contains(name) {
            problems.push(format!("{name} is a workspace member but not in the table"));
        }
    }
    for (i, (name, normal, dev)) in table.iter().enumerate() {
        let Some((real_normal, real_dev)) = manifests.get(name) else {
            problems.push(format!("{name} is in the table but not a workspace member"));
            continue;
        };
        if normal != real_normal {
            problems.push(format!(
                "{name}: the table says it depends on {normal:?}, Cargo.toml on {real_normal:?}"
            ));
        }
        if dev != real_dev {
            problems.push(format!(
                "{name}: the table says dev-depends on {dev:?}, Cargo.toml on {real_dev:?}"
            ));
        }
        let below: BTreeSet<&String> = table[i + 1..].iter().map(|(n, ..)| n).collect();
        for dep in real_normal.iter().chain(real_dev) {
            let allowed = real_dev.contains(dep)
                && !real_normal.contains(dep)
                && (name.as_str(), dep.as_str()) == UPWARD_DEV;
            if !below.contains(dep) && !allowed {
                problems.push(format!("{name} depends on {dep}, which is not below it"));
            }
        }
    }
    problems
}

fn doc() -> String {
    std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap()
}

#[test]
fn the_crate_table_matches_the_manifests() {
    let table = parse_table(&doc());
    assert!(table.len() >= 7, "the crate table was not found: {table:?}");
    let problems = problems(&table, &manifests());
    assert!(problems.is_empty(), "docs/ARCHITECTURE.md: {problems:#?}");
}

#[test]
fn a_wrong_table_is_reported() {
    let manifests = manifests();
    let good = parse_table(&doc());

    // A dependency left out of the table.
    let mut missing_dep = good.clone();
    let gateway = missing_dep
        .iter_mut()
        .find(|(n, ..)| n == "pluto-gateway")
        .unwrap();
    gateway.1.remove("pluto-mime");
    assert!(!problems(&missing_dep, &manifests).is_empty());

    // An arrow pointing up: the table in reverse order.
    let mut reversed = good.clone();
    reversed.reverse();
    assert!(
        problems(&reversed, &manifests)
            .iter()
            .any(|p| p.contains("not below it"))
    );

    // Another dev-dependency pointing up is reported; the allowed one is not.
    let mut upward = manifests.clone();
    upward
        .get_mut("pluto-mime")
        .unwrap()
        .1
        .insert("pluto-gateway".to_owned());
    let mut upward_table = good.clone();
    upward_table
        .iter_mut()
        .find(|(n, ..)| n == "pluto-mime")
        .unwrap()
        .2
        .insert("pluto-gateway".to_owned());
    let found = problems(&upward_table, &upward);
    assert_eq!(
        found,
        ["pluto-mime depends on pluto-gateway, which is not below it"],
        "{found:?}"
    );
    // The allowed upward arrow, but as a normal dependency, is reported.
    let mut normal = manifests.clone();
    normal
        .get_mut(UPWARD_DEV.0)
        .unwrap()
        .0
        .insert(UPWARD_DEV.1.to_owned());
    let mut normal_table = good.clone();
    normal_table
        .iter_mut()
        .find(|(n, ..)| n == UPWARD_DEV.0)
        .unwrap()
        .1
        .insert(UPWARD_DEV.1.to_owned());
    assert!(
        problems(&normal_table, &normal)
            .iter()
            .any(|p| p.contains("not below it")),
        "a normal dependency may not point up"
    );

    // A member left out.
    let mut short = good;
    short.retain(|(n, ..)| n != "pluto-mime");
    assert!(
        problems(&short, &manifests)
            .iter()
            .any(|p| p.contains("not in the table"))
    );
}
