//! Every inferlet the components workspace builds is used by some test or benchmark.

use crust_tests::repo_root;

#[test]
fn every_built_inferlet_has_a_test() {
    let root = repo_root();
    let mut sources = String::new();
    for dir in ["tests/e2e", "tests/benches"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            sources += &std::fs::read_to_string(entry.unwrap().path()).unwrap();
        }
    }
    let mut untested = Vec::new();
    for crate_dir in std::fs::read_dir(root.join("components/inferlets")).unwrap() {
        let manifest = std::fs::read_to_string(crate_dir.unwrap().path().join("Cargo.toml")).unwrap();
        let manifest: toml_names::Manifest = toml_names::parse(&manifest);
        for name in manifest.artifacts() {
            if !sources.contains(&format!("\"{name}\"")) {
                untested.push(name);
            }
        }
    }
    assert!(untested.is_empty(), "inferlets no test uses: {untested:?}");
}

/// Just enough of a Cargo manifest to name what it builds.
mod toml_names {
    pub struct Manifest {
        package: String,
        bins: Vec<String>,
    }

    pub fn parse(text: &str) -> Manifest {
        let mut package = String::new();
        let mut bins = Vec::new();
        let mut section = "";
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if let Some(value) = line.strip_prefix("name = ") {
                let value = value.trim_matches('"').to_string();
                match section {
                    "[package]" => package = value,
                    "[[bin]]" => bins.push(value),
                    _ => {}
                }
            }
        }
        Manifest { package, bins }
    }

    impl Manifest {
        pub fn artifacts(&self) -> Vec<String> {
            if self.bins.is_empty() { vec![self.package.clone()] } else { self.bins.clone() }
        }
    }
}
