//! Repository invariants, checked by ordinary `#[test]`s so that `cargo test`
//! enforces what ARCHITECTURE.md states: which crate may depend on which,
//! that every declared dependency is used, that `core` names no layer, and
//! that every concept crate is wired into the facade, the README and
//! ARCHITECTURE.md.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::{Path, PathBuf};

    use crate::project_root;

    /// Every crate under `crates/`: folder name and manifest.
    fn crates() -> Vec<(String, toml::Table)> {
        let mut out = Vec::new();
        for entry in fs::read_dir(project_root().join("crates")).unwrap() {
            let dir = entry.unwrap().path();
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, manifest.parse().unwrap()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The names of a manifest's `[dependencies]`.
    fn dependencies(manifest: &toml::Table) -> Vec<String> {
        manifest.get("dependencies").and_then(|d| d.as_table()).map_or_else(Vec::new, |d| d.keys().cloned().collect())
    }

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(dir) else { return out };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(sources(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
        out
    }

    // ANCHOR: layering
    /// The addmul crates each crate may depend on: the layering drawn in
    /// ARCHITECTURE.md. A crate may use fewer; a new edge must be added here
    /// (and to the drawing) on purpose.
    const ALLOWED: &[(&str, &[&str])] = &[
        ("core", &[]),
        ("tokenizer", &[]),
        ("plot", &[]),
        ("nn", &["core"]),
        ("softmax", &["core"]),
        ("train", &["core"]),
        ("embedding", &["core"]),
        ("posenc", &["core"]),
        ("layernorm", &["core"]),
        ("dropout", &["core"]),
        ("residual", &["core", "dropout"]),
        ("attention", &["core", "nn", "softmax"]),
        ("multihead", &["core", "nn", "attention"]),
        ("lora", &["core", "nn", "dropout"]),
        ("leafflower", &["core", "nn", "softmax", "train"]),
        ("charlm", &["core", "nn", "embedding", "softmax", "train", "tokenizer"]),
        (
            "gpt",
            &["core", "nn", "softmax", "train", "embedding", "posenc", "multihead", "layernorm", "dropout", "residual"],
        ),
        (
            "transformer",
            &["core", "nn", "softmax", "train", "embedding", "posenc", "multihead", "layernorm", "dropout", "residual"],
        ),
    ];
    // ANCHOR_END: layering

    #[test]
    fn crates_depend_only_on_the_crates_below_them() {
        let allowed: BTreeMap<_, _> = ALLOWED.iter().copied().collect();
        for (name, manifest) in crates() {
            let Some(may) = allowed.get(name.as_str()) else {
                panic!("crates/{name} is not in tidy.rs's ALLOWED layering (nor, probably, in ARCHITECTURE.md)");
            };
            for dep in dependencies(&manifest) {
                if let Some(other) = dep.strip_prefix("addmul-") {
                    assert!(
                        may.contains(&other),
                        "crates/{name} depends on {dep}, which ARCHITECTURE.md does not allow"
                    );
                }
            }
        }
    }

    #[test]
    fn every_declared_dependency_is_used() {
        for (name, manifest) in crates() {
            let text: String =
                sources(&project_root().join("crates").join(&name).join("src")).into_iter().map(|(_, t)| t).collect();
            for dep in dependencies(&manifest) {
                let path = dep.replace('-', "_");
                assert!(
                    text.contains(&format!("{path}::")) || text.contains(&format!("use {path}")),
                    "crates/{name} declares {dep} but its src/ never names `{path}`"
                );
            }
        }
    }

    #[test]
    fn core_names_no_layer_or_model() {
        // Comments may mention layers (as examples); code may not.
        let names =
            ["Linear", "LayerNorm", "Attention", "Embedding", "Softmax", "Dropout", "Gpt", "Transformer", "Mlp"];
        for (path, text) in sources(&project_root().join("crates/core/src")) {
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for name in names {
                    let found = code.match_indices(name).any(|(at, _)| {
                        let before = code[..at].chars().next_back();
                        let after = code[at + name.len()..].chars().next();
                        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                            && !code[..at].ends_with('"')
                    });
                    assert!(!found, "{}:{} names `{name}`: core knows no layer or model", path.display(), i + 1);
                }
            }
        }
    }

    #[test]
    fn every_crate_is_wired_into_the_facade_and_documented() {
        let root = project_root();
        let facade: toml::Table = fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
        let facade_deps = dependencies(&facade);
        let workspace_deps = facade["workspace"]["dependencies"].as_table().unwrap();
        let lib = fs::read_to_string(root.join("src/lib.rs")).unwrap();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        let architecture = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
        for (name, manifest) in crates() {
            let package = manifest["package"]["name"].as_str().unwrap().to_string();
            let path = package.replace('-', "_");
            assert_eq!(package, format!("addmul-{name}"), "crates/{name}'s package is named addmul-{name}");
            assert!(workspace_deps.contains_key(&package), "{package} is in [workspace.dependencies]");
            assert!(facade_deps.contains(&package), "the facade depends on {package}");
            assert!(lib.contains(&format!("pub use {path} as {name};")), "src/lib.rs re-exports {path} as {name}");
            assert!(readme.contains(&format!("`crates/{name}`")), "README.md's crate map lists crates/{name}");
            assert!(
                architecture.contains(&format!("`crates/{name}`")) || architecture.contains(&format!("crates/{name},")),
                "ARCHITECTURE.md's code map has crates/{name}"
            );
            let crate_doc = fs::read_to_string(root.join("crates").join(&name).join("src/lib.rs")).unwrap();
            assert!(crate_doc.starts_with("//!"), "crates/{name}/src/lib.rs starts with its crate documentation");
            assert!(crate_doc.contains("#![deny(missing_docs)]"), "crates/{name} denies missing docs");
        }
    }
}
