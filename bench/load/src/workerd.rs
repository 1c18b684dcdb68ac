//! A workerd configuration (Cap'n Proto text) for a worker built by worker-build and described by a
//! wrangler.toml, so the load benchmark can run the same worker on the same workerd binary that
//! `wrangler dev` uses, without wrangler: no inspector, no dev proxy, no Node process.
//!
//! Only what this repository's wrangler.toml files use is read: `compatibility_date`,
//! `compatibility_flags`, `[[durable_objects.bindings]]` and `[vars]` (one `KEY = "value"` a line).

use std::fmt::Write as _;
use std::path::Path;

/// What the configuration needs from a wrangler.toml.
#[derive(Debug, Default)]
pub(crate) struct Manifest {
    compatibility_date: String,
    compatibility_flags: Vec<String>,
    /// (binding name, class name)
    durable_objects: Vec<(String, String)>,
    vars: Vec<(String, String)>,
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('"').to_owned()
}

impl Manifest {
    pub(crate) fn parse(text: &str) -> Manifest {
        let mut manifest = Manifest::default();
        let mut section = String::new();
        let mut binding: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
                binding = None;
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            match (section.as_str(), key) {
                ("", "compatibility_date") => manifest.compatibility_date = unquote(value),
                ("", "compatibility_flags") => {
                    manifest.compatibility_flags = value
                        .trim()
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .map(unquote)
                        .filter(|flag| !flag.is_empty())
                        .collect()
                }
                ("durable_objects.bindings", "name") => binding = Some(unquote(value)),
                ("durable_objects.bindings", "class_name") => {
                    let name = binding.take().expect("name before class_name");
                    manifest.durable_objects.push((name, unquote(value)));
                }
                ("vars", _) => manifest.vars.push((key.to_owned(), unquote(value))),
                _ => {}
            }
        }
        manifest
    }
}

/// Every file under `dir` as a path relative to it, `/`-separated, sorted.
fn files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read build dir")
        .flatten()
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            files(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

/// The configuration text, to be written into `base`. `build` is the worker-build output directory
/// (holding `main`, e.g. `worker/shim.mjs`) under `base`, `state` a directory for Durable Object
/// storage. `entry` puts a pass-through worker in front.
#[allow(clippy::too_many_arguments)]
pub(crate) fn config(
    manifest: &Manifest,
    base: &Path,
    build: &Path,
    main: &str,
    state: &Path,
    port: u16,
    extra_vars: &[(&str, &str)],
    entry: bool,
) -> String {
    let mut modules = vec![main.to_owned()];
    let mut all = Vec::new();
    files(build, "", &mut all);
    modules.extend(all.into_iter().filter(|m| m != main));
    let mut text = String::from("using Workerd = import \"/workerd/workerd.capnp\";\n\n");
    text.push_str("const config :Workerd.Config = (\n  services = [\n");
    text.push_str("    (name = \"main\", worker = .worker),\n");
    if entry {
        // A pass-through worker in front, as Miniflare's entry worker sits in front of the user
        // worker under wrangler dev (minus its logging and error pages): every request and every
        // response chunk then crosses one more worker.
        let _ = writeln!(
            text,
            "    (name = \"entry\", worker = (modules = [(name = \"entry.mjs\", esModule = \
             \"export default {{ fetch(request, env) {{ return env.USER.fetch(request); }} }};\")], \
             compatibilityDate = {:?}, bindings = [(name = \"USER\", service = \"main\")])),",
            manifest.compatibility_date
        );
    }
    let _ = writeln!(
        text,
        "    (name = \"state\", disk = (path = {:?}, writable = true)),",
        state.display().to_string()
    );
    text.push_str("  ],\n");
    let service = if entry { "entry" } else { "main" };
    let _ = writeln!(
        text,
        "  sockets = [(name = \"http\", address = \"127.0.0.1:{port}\", http = (), service = \"{service}\")],"
    );
    text.push_str(");\n\nconst worker :Workerd.Worker = (\n  modules = [\n");
    for module in &modules {
        // `embed` reads paths relative to the configuration file.
        let path = build.join(module);
        let path = path
            .strip_prefix(base)
            .unwrap_or(&path)
            .display()
            .to_string();
        // The main module comes first; workerd resolves imports between the others by name.
        if module.ends_with(".mjs") || module.ends_with(".js") {
            let _ = writeln!(text, "    (name = {module:?}, esModule = embed {path:?}),");
        } else if module.ends_with(".wasm") {
            let _ = writeln!(text, "    (name = {module:?}, wasm = embed {path:?}),");
        }
    }
    text.push_str("  ],\n");
    let _ = writeln!(
        text,
        "  compatibilityDate = {:?},",
        manifest.compatibility_date
    );
    let flags: Vec<String> = manifest
        .compatibility_flags
        .iter()
        .map(|f| format!("{f:?}"))
        .collect();
    let _ = writeln!(text, "  compatibilityFlags = [{}],", flags.join(", "));
    text.push_str("  bindings = [\n");
    for (name, class) in &manifest.durable_objects {
        let _ = writeln!(
            text,
            "    (name = {name:?}, durableObjectNamespace = (className = {class:?})),"
        );
    }
    let extra = extra_vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
    for (key, value) in manifest.vars.iter().cloned().chain(extra) {
        let _ = writeln!(text, "    (name = {key:?}, text = {value:?}),");
    }
    text.push_str("  ],\n  durableObjectNamespaces = [\n");
    for (_, class) in &manifest.durable_objects {
        let _ = writeln!(
            text,
            "    (className = {class:?}, uniqueKey = \"herald-load-{class}\", enableSql = true),"
        );
    }
    text.push_str("  ],\n  durableObjectStorage = (localDisk = \"state\"),\n);\n");
    text
}

#[cfg(test)]
mod tests {
    use super::Manifest;

    #[test]
    fn reads_what_the_repository_configs_use() {
        let manifest = Manifest::parse(
            "name = \"x\"\ncompatibility_date = \"2025-09-01\"\n\n[[durable_objects.bindings]]\n\
             name = \"FAN\"\nclass_name = \"Fan\"\n\n[[durable_objects.bindings]]\nname = \"RELAY\"\n\
             class_name = \"Relay\"\n\n[[migrations]]\ntag = \"v1\"\n\n[vars]\n# a comment\n\
             HERALD_RETRY_MS = \"3000\"\nHERALD_CORS_ORIGINS = \"\"\n",
        );
        assert_eq!(manifest.compatibility_date, "2025-09-01");
        assert_eq!(
            manifest.durable_objects,
            vec![
                ("FAN".to_owned(), "Fan".to_owned()),
                ("RELAY".to_owned(), "Relay".to_owned())
            ]
        );
        assert_eq!(
            manifest.vars,
            vec![
                ("HERALD_RETRY_MS".to_owned(), "3000".to_owned()),
                ("HERALD_CORS_ORIGINS".to_owned(), String::new())
            ]
        );
    }
}
