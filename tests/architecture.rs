//! The crate's shape, checked on its source: no file under `src/` past 700 lines, no cycle
//! between the top-level modules of `src/` (a layer uses only those below it), and an
//! optimizer named in few files (the registry is the one list: its config file, its mirror,
//! its registry row). Comments do not count; the source is read as text, so the test needs no
//! adapter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as (path relative to `src/`, text).
fn files() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&src(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path
                .strip_prefix(src())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (name, text)
        })
        .collect()
}

/// The code of `text`: each line without its `//` comment (doc comments included).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file under `src/` belongs to (`lib` for lib.rs).
fn module_of(path: &str) -> &str {
    let first = path.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first)
}

#[test]
fn no_file_under_src_is_over_700_lines() {
    let long: Vec<String> = files()
        .into_iter()
        .filter(|(_, text)| text.lines().count() > 700)
        .map(|(path, text)| format!("{path}: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "split these by responsibility: {long:?}");
}

#[test]
fn top_level_modules_form_no_cycle() {
    let files = files();
    let modules: BTreeSet<&str> = files
        .iter()
        .map(|(path, _)| module_of(path))
        .filter(|&m| m != "lib")
        .collect();
    assert!(modules.len() >= 10, "{modules:?}");
    // Module A uses module B where A's code names `crate::B`.
    let mut uses: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (path, text) in &files {
        let from = module_of(path);
        if from == "lib" {
            continue;
        }
        let code = code(text);
        for &to in &modules {
            if to != from && code.contains(&format!("crate::{to}::")) {
                uses.entry(from).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        module: &'a str,
        uses: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|&m| m == module) {
            panic!("module cycle: {:?} -> {module}", &path[at..]);
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for &next in uses.get(module).into_iter().flatten() {
            visit(next, uses, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for &module in &modules {
        visit(module, &uses, &mut Vec::new(), &mut BTreeSet::new());
        done.insert(module);
    }
    // The layers the design names, each using only those below it.
    let below = |a: &str, b: &str| uses.get(a).is_some_and(|u| u.contains(b));
    for (upper, lower) in [
        ("kernel", "gpu"),
        ("optim", "kernel"),
        ("optimizer", "optim"),
        ("train", "optimizer"),
    ] {
        assert!(below(upper, lower), "{upper} should use {lower}: {uses:?}");
        assert!(!below(lower, upper), "{lower} uses {upper}");
    }
    for layer in [
        "gpu",
        "kernel",
        "optim",
        "grad",
        "schedule",
        "optimizer",
        "train",
    ] {
        assert!(!below(layer, "reference"), "{layer} uses the CPU reference");
    }
    assert!(
        !below("gpu", "optim") && !below("kernel", "optim"),
        "{uses:?}"
    );
}

#[test]
fn an_optimizer_is_named_in_few_files() {
    let files = files();
    for name in ["adamax", "nadam", "lion", "adadelta"] {
        let naming: Vec<&str> = files
            .iter()
            .filter(|(path, _)| path != "lib.rs")
            .filter(|(_, text)| code(text).to_lowercase().contains(name))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(
            !naming.is_empty() && naming.len() <= 4,
            "{name} is named in {} files: {naming:?}",
            naming.len()
        );
    }
}

/// The optimizer tables of the README and of docs/optimizers.md have a row for every
/// optimizer of the registry, so the documentation keeps up with CONTRIBUTING.md's last step.
#[test]
fn every_registered_optimizer_is_in_the_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tables = [
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        std::fs::read_to_string(root.join("docs/optimizers.md")).unwrap(),
    ];
    let configs = wgpu_optim::OptimizerConfig::defaults();
    assert!(configs.len() >= 17);
    for config in configs {
        // `Sgd(SgdConfig { .. })`: the configuration's type.
        let debug = format!("{config:?}");
        let start = debug.find('(').unwrap() + 1;
        let end = debug.find(" {").unwrap();
        let row = format!("| `{}` |", &debug[start..end]);
        for (file, text) in ["README.md", "docs/optimizers.md"].iter().zip(&tables) {
            assert!(text.contains(&row), "{file} has no row {row}");
        }
    }
}
