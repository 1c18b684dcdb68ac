//! Records the optimisation level so the report can say what it measured: `--release` in this
//! workspace is tuned for Wasm size (`opt-level = "z"`), which is not what a speed comparison
//! should use.

fn main() {
    // Cargo gives build scripts the optimisation level of the profile being built (`--release` here
    // is "z", `--profile bench` is "3"); the profile's name itself is not passed.
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "?".into());
    println!("cargo:rustc-env=HERALD_BENCH_OPT_LEVEL={opt_level}");
    println!("cargo:rerun-if-changed=build.rs");
}
