//! Bundles Mermaid (the web UI's diagram renderer) into the binary at build time, so that
//! nothing is fetched from the internet at run time.
//!
//! Where it comes from: `KUBEMEDIC_MERMAID_JS` (the path of `mermaid.min.js`), else the copy
//! `tests/tools/install.sh` puts under `${KUBEMEDIC_CACHE:-~/.cache/kubemedic}/mermaid`
//! (pinned in `daemon/assets/package-lock.json`). Without either, the binary is built without
//! it and the incident page shows the causal chain as Mermaid source, saying why; a path set
//! in `KUBEMEDIC_MERMAID_JS` that does not exist fails the build.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=KUBEMEDIC_MERMAID_JS");
    println!("cargo:rerun-if-env-changed=KUBEMEDIC_CACHE");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("mermaid.rs");
    let explicit = std::env::var_os("KUBEMEDIC_MERMAID_JS").filter(|p| !p.is_empty()).map(PathBuf::from);
    let cache = std::env::var_os("KUBEMEDIC_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kubemedic")));
    let path = match explicit {
        Some(p) if p.is_file() => Some(p),
        Some(p) => {
            panic!("KUBEMEDIC_MERMAID_JS={} is not a file (install it with tests/tools/install.sh)", p.display())
        }
        None => cache.map(|c| c.join("mermaid/node_modules/mermaid/dist/mermaid.min.js")).filter(|p| p.is_file()),
    };
    let code = match path {
        Some(p) => {
            println!("cargo:rerun-if-changed={}", p.display());
            let p = p.canonicalize().expect("canonical path of mermaid.min.js");
            format!("Some(include_bytes!({:?}))", p.display().to_string())
        }
        None => {
            println!(
                "cargo:warning=building without Mermaid: the web UI shows causal chains as source (run tests/tools/install.sh or set KUBEMEDIC_MERMAID_JS)"
            );
            "None".to_owned()
        }
    };
    std::fs::write(
        &out,
        format!("/// `mermaid.min.js`, when the build found it.\npub const MERMAID: Option<&[u8]> = {code};\n"),
    )
    .expect("write OUT_DIR/mermaid.rs");
}
