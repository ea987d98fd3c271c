//! Embeds the web UI: our own files from `ui/src`, and the front-end libraries the UI imports,
//! installed from the npm registry with `npm ci` against `ui/package-lock.json` (into `OUT_DIR`,
//! never into the source tree). Writes `ui_assets.rs`: every served file with its content type
//! and an ETag.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files served from the installed packages: (served path, path under `node_modules`).
const VENDOR: [(&str, &str); 3] = [
    ("vendor/preact.mjs", "preact/dist/preact.mjs"),
    ("vendor/hooks.mjs", "preact/hooks/dist/hooks.mjs"),
    ("vendor/htm.mjs", "htm/dist/htm.mjs"),
];
/// Packages whose licence texts are served at `/ui/vendor/LICENSES.txt`.
const LICENSED: [&str; 2] = ["preact", "htm"];

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let ui = manifest.join("ui");
    for watched in ["package.json", "package-lock.json", "src"] {
        println!("cargo:rerun-if-changed={}", ui.join(watched).display());
    }
    let modules = install(&ui, &out.join("ui-npm"))?;

    let mut assets: Vec<(String, PathBuf)> = Vec::new();
    collect(&ui.join("src"), "", &mut assets)?;
    let vendor = out.join("ui-vendor");
    fs::create_dir_all(&vendor)?;
    for (served, source) in VENDOR {
        let mut text = fs::read_to_string(modules.join(source))?;
        if served == "vendor/hooks.mjs" {
            // The hooks import the bare specifier "preact"; point it at the served file so the page
            // needs no import map (an inline script the content security policy would have to allow).
            let rewritten = text.replace("from\"preact\"", "from\"./preact.mjs\"");
            if rewritten == text {
                return Err(format!("{source} no longer imports \"preact\" as expected; update api/build.rs").into());
            }
            text = rewritten;
        }
        let file = vendor.join(served.trim_start_matches("vendor/"));
        fs::write(&file, text)?;
        assets.push((served.to_owned(), file));
    }
    let mut licenses = String::new();
    for package in LICENSED {
        let dir = modules.join(package);
        let version = fs::read_to_string(dir.join("package.json"))?
            .lines()
            .find(|l| l.trim_start().starts_with("\"version\""))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default();
        licenses.push_str(&format!("== {package} ({version}) ==\n\n{}\n\n", fs::read_to_string(dir.join("LICENSE"))?));
    }
    let licenses_file = vendor.join("LICENSES.txt");
    fs::write(&licenses_file, licenses)?;
    assets.push(("vendor/LICENSES.txt".to_owned(), licenses_file));
    assets.sort();

    let mut code = String::from("/// Every file the UI serves: (path under `/ui/`, content type, ETag, bytes).\n");
    code.push_str("pub static ASSETS: &[(&str, &str, &str, &[u8])] = &[\n");
    for (served, file) in &assets {
        let bytes = fs::read(file)?;
        code.push_str(&format!(
            "    ({served:?}, {:?}, \"\\\"{:016x}\\\"\", include_bytes!({:?})),\n",
            content_type(served)?,
            fnv1a(&bytes),
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    fs::write(out.join("ui_assets.rs"), code)?;
    Ok(())
}

/// Runs `npm ci` in `dir` when the lock file changed since the last install; the packages' dir.
fn install(ui: &Path, dir: &Path) -> Result<PathBuf> {
    let lock = fs::read(ui.join("package-lock.json"))?;
    let installed = dir.join("package-lock.json");
    let modules = dir.join("node_modules");
    if fs::read(&installed).ok().as_deref() == Some(lock.as_slice()) && modules.is_dir() {
        return Ok(modules);
    }
    fs::create_dir_all(dir)?;
    fs::copy(ui.join("package.json"), dir.join("package.json"))?;
    fs::copy(ui.join("package-lock.json"), &installed)?;
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .map_err(|e| format!("running npm (Node.js 18 or later with npm is needed to build the web UI): {e}"))?;
    if !status.success() {
        // Leave no lock behind, so the next build tries again.
        let _ = fs::remove_file(&installed);
        return Err(format!("`npm ci` for the web UI failed ({status}); the npm registry must be reachable").into());
    }
    Ok(modules)
}

fn collect(dir: &Path, prefix: &str, into: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let served = format!("{prefix}{name}");
        if entry.file_type()?.is_dir() {
            collect(&entry.path(), &format!("{served}/"), into)?;
        } else {
            into.push((served, entry.path()));
        }
    }
    Ok(())
}

fn content_type(path: &str) -> Result<&'static str> {
    let extension = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    Ok(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        _ => {
            return Err(
                format!("api/ui/src/{path}: no content type for .{extension} files; add one in api/build.rs").into()
            );
        }
    })
}

/// FNV-1a, 64 bits: an ETag that changes with the content.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
