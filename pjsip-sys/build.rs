//! Finds PJSIP, links it statically, compiles the C shim and generates the bindings.
//!
//! PJSIP is looked up in a fixed order (house style: libsqlite3-sys, openssl-sys):
//! 1. `PJPROJECT_PREFIX`: an installed prefix with `lib/pkgconfig/libpjproject.pc`;
//! 2. our own recipe's install, `build/cache/prefix` (or `$VOICEAGENT_PJ_CACHE/prefix`), made by
//!    `build/pjproject.sh`;
//! 3. otherwise the build fails with an error that names the command to run.
//!
//! PJSIP is never built from here: it takes a minute and must not happen on every `cargo build`.
//! The bindings and the shim are compiled with the install's own `Cflags`, its installed
//! `pj/config_site.h` and `-DNDEBUG`, exactly as the C library was, because struct layouts depend
//! on them.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    for var in ["PJPROJECT_PREFIX", "VOICEAGENT_PJ_CACHE", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in ["wrapper.h", "shim/shim.h", "shim/shim.c"] {
        println!("cargo:rerun-if-changed={file}");
    }

    let prefix = find_prefix();
    let pc_dir = prefix.join("lib/pkgconfig");
    println!(
        "cargo:rerun-if-changed={}",
        pc_dir.join("libpjproject.pc").display()
    );
    // The recipe rewrites its stamp on every rebuild, so a new PJSIP install relinks us.
    println!(
        "cargo:rerun-if-changed={}",
        prefix.join(".voiceagent-stamp").display()
    );

    // Where the tree came from (build/pjproject.sh writes it; an outside prefix has none).
    let flavor_file = prefix.join(".voiceagent-flavor");
    println!("cargo:rerun-if-changed={}", flavor_file.display());
    let flavor = std::fs::read_to_string(&flavor_file)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "installed prefix".into());
    println!("cargo:rustc-env=VOICEAGENT_PJ_FLAVOR={flavor}");

    let library = probe(&pc_dir);
    link(&prefix, &library);

    let mut defines: Vec<(String, Option<String>)> = library
        .defines
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    defines.push(("NDEBUG".into(), Some("1".into())));
    defines.sort();

    compile_shim(&library.include_paths, &defines);
    generate_bindings(&library.include_paths, &defines);

    // Downstream build scripts (and the ABI test) can find the install through DEP_PJPROJECT_*.
    println!("cargo:prefix={}", prefix.display());
    println!(
        "cargo:include={}",
        env::join_paths(&library.include_paths)
            .expect("include paths are valid")
            .to_string_lossy()
    );
}

fn find_prefix() -> PathBuf {
    if let Some(prefix) = env::var_os("PJPROJECT_PREFIX") {
        let prefix = PathBuf::from(prefix);
        if !prefix.join("lib/pkgconfig/libpjproject.pc").is_file() {
            fail(&format!(
                "PJPROJECT_PREFIX={} has no lib/pkgconfig/libpjproject.pc.\n\
                 Point it at a pjproject install prefix (the --prefix of its `make install`), \
                 or unset it to use build/pjproject.sh.",
                prefix.display()
            ));
        }
        return prefix;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest.parent().expect("pjsip-sys lives in the workspace");
    let cache = env::var_os("VOICEAGENT_PJ_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("build/cache"));
    let prefix = cache.join("prefix");
    if prefix.join("lib/pkgconfig/libpjproject.pc").is_file() {
        return prefix;
    }
    fail(&format!(
        "PJSIP is not built yet (looked for {}).\n\
         Run `build/pjproject.sh` in {} (about a minute; scripts/install-deps.sh installs what it \
         needs), or set PJPROJECT_PREFIX to an installed pjproject prefix.",
        prefix.join("lib/pkgconfig/libpjproject.pc").display(),
        workspace.display()
    ))
}

fn probe(pc_dir: &Path) -> pkg_config::Library {
    // Only our prefix's .pc file: never a system pjproject of another version.
    // Build scripts are single-threaded, so changing our own environment here is sound.
    env::set_var("PKG_CONFIG_PATH", pc_dir);
    pkg_config::Config::new()
        .statik(true)
        .cargo_metadata(false)
        .env_metadata(false)
        .probe("libpjproject")
        .unwrap_or_else(|e| fail(&format!("pkg-config could not read libpjproject.pc: {e}")))
}

fn link(prefix: &Path, library: &pkg_config::Library) {
    let lib_dir = prefix.join("lib");
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    let mut seen = Vec::new();
    for name in &library.libs {
        // libpjproject.pc always lists libstdc++ (for pjsua2, which we do not build).
        if name == "stdc++" || seen.contains(name) {
            continue;
        }
        seen.push(name.clone());
        // PJSIP's own archives are linked statically; system libraries (opus, srtp2, ssl,
        // crypto, uuid) dynamically, as Debian ships them.
        if lib_dir.join(format!("lib{name}.a")).is_file() {
            println!("cargo:rustc-link-lib=static:-bundle={name}");
        } else {
            println!("cargo:rustc-link-lib={name}");
        }
    }
}

fn compile_shim(include_paths: &[PathBuf], defines: &[(String, Option<String>)]) {
    let mut build = cc::Build::new();
    build
        .file("shim/shim.c")
        .includes(include_paths)
        .warnings(true);
    for (key, value) in defines {
        build.define(key, value.as_deref());
    }
    build.compile("voiceagent_pj_shim");
}

fn generate_bindings(include_paths: &[PathBuf], defines: &[(String, Option<String>)]) {
    let mut clang_args: Vec<String> = include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    for (key, value) in defines {
        clang_args.push(match value {
            Some(v) => format!("-D{key}={v}"),
            None => format!("-D{key}"),
        });
    }
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("(pj|pjsua|pjsip|pjmedia)_.*")
        .allowlist_function("voiceagent_.*")
        .allowlist_type("(pj|pjsua|pjsip|pjmedia)_.*")
        .allowlist_var("(PJ|PJSUA|PJSIP|PJMEDIA)_.*")
        // Names glibc's headers define twice (math.h, netinet/in.h).
        .blocklist_item("FP_.*")
        .blocklist_item("IPPORT_RESERVED")
        // va_list functions cannot be called portably from Rust.
        .blocklist_function(".*v(sn)?printf")
        .blocklist_function("pj_log")
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| {
            fail(&format!(
                "bindgen failed on wrapper.h: {e}\n\
                 bindgen needs libclang: install libclang-dev (scripts/install-deps.sh)."
            ))
        });
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("bindings.rs");
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", out.display())));
}

fn fail(message: &str) -> ! {
    eprintln!("\nerror: {message}\n");
    std::process::exit(1);
}
