//! The foreign-language side of the bindings, tested from `cargo test`.
//!
//! - `python_suite` builds the cdylib, the `kinko` CLI and `uniffi-bindgen` (one `cargo
//!   build` in this test's own target directory and profile, so a fresh clone needs nothing
//!   built beforehand and `cargo test -p kinko-ffi` works alone; under `cargo test
//!   --workspace` it finds them built), generates the Python module,
//!   and runs the `unittest` suite in `bindings/tests/python/` against the real library, the
//!   real `kinko` binary and, for the client tests, a real `kinko serve` on 127.0.0.1. The
//!   Python output is not captured, so its figures (the RSS measurements) show in the test
//!   output.
//! - `kotlin_and_swift_sources_are_current` regenerates the Kotlin and Swift sources from the
//!   same library and fails if the checked-in copies under `bindings/kotlin/` and
//!   `bindings/swift/` differ. `KINKO_UPDATE_BINDINGS=1` rewrites them instead.
//!
//! Needs `python3` (tested with 3.11; standard library only) on `PATH`; fails, never skips,
//! without it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What the tests run, built by [`built`].
struct Built {
    /// `libkinko_ffi.so` (or `.dylib`).
    library: PathBuf,
    /// The `uniffi-bindgen` binary.
    bindgen: PathBuf,
    /// The `kinko` binary.
    kinko: PathBuf,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> &'static Path {
    manifest_dir()
        .parent()
        .expect("bindings/ sits in the workspace root")
}

/// The target directory and profile this test binary was built in:
/// `<target>/<profile dir>/deps/foreign-<hash>`.
fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let deps = exe.parent().expect("the test binary is in deps/");
    let profile_dir = deps.parent().expect("deps/ is in the profile directory");
    let target = profile_dir
        .parent()
        .expect("the profile directory is in the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => panic!("unexpected test binary path {}", exe.display()),
    };
    (target.to_path_buf(), profile)
}

/// Builds the library, `uniffi-bindgen` and `kinko` once per test run.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (target, profile) = target_and_profile();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        // The whole workspace's libraries, binaries and tests: the same selection, hence the
        // same feature unification, as `cargo test --workspace`, so under that command (CI)
        // this finds everything built already. Building only the three packages would resolve
        // other features (dev-dependencies enable some) and compile a second copy of the core.
        // `--lib` makes the library a target of its own, so its cdylib is copied to
        // `<profile>/` (as a mere dependency of the tests it stays in `deps/`).
        let out = Command::new(cargo)
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--workspace", "--lib", "--bins", "--tests"])
            .args(["--profile", &profile])
            .stdin(Stdio::null())
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building the library, uniffi-bindgen and kinko failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let profile_dir = target.join(if profile == "dev" { "debug" } else { &profile });
        let library = profile_dir.join(format!(
            "{}kinko_ffi{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        let exe = |name: &str| profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        let built = Built {
            library,
            bindgen: exe("uniffi-bindgen"),
            kinko: exe("kinko"),
        };
        for path in [&built.library, &built.bindgen, &built.kinko] {
            assert!(
                path.is_file(),
                "cargo build did not produce {}",
                path.display()
            );
        }
        built
    })
}

/// Generates the sources for `language` into `out_dir`, unformatted (so they do not depend on
/// which formatters are installed).
fn generate(language: &str, out_dir: &Path) {
    let built = built();
    let out = Command::new(&built.bindgen)
        .current_dir(workspace_root())
        .args([
            "generate",
            "--no-format",
            "--language",
            language,
            "--out-dir",
        ])
        .arg(out_dir)
        .arg(&built.library)
        .stdin(Stdio::null())
        .output()
        .expect("uniffi-bindgen runs");
    assert!(
        out.status.success(),
        "uniffi-bindgen generate --language {language} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let (target, _) = target_and_profile();
    let dir = target
        .join("tmp")
        .join(format!("kinko-ffi-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

#[test]
fn python_suite() {
    let built = built();
    let module_dir = temp_dir("python");
    generate("python", &module_dir);
    // The generated module loads the library from its own directory.
    fs::copy(
        &built.library,
        module_dir.join(built.library.file_name().expect("library file name")),
    )
    .expect("copy the library beside the module");

    let suite = manifest_dir().join("tests/python");
    let status = Command::new("python3")
        .current_dir(&module_dir)
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(&suite)
        .args(["-t"])
        .arg(&suite)
        .env("PYTHONPATH", &module_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("KINKO_BIN", &built.kinko)
        .env("KINKO_VECTORS", workspace_root().join("core/tests/vectors"))
        .env("KINKO_TEST_TMP", &module_dir)
        .env_remove("KINKO_PASSPHRASE")
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "could not run python3 ({e}): the binding tests need Python 3 on PATH \
                 (standard library only)"
            )
        });
    assert!(status.success(), "the Python test suite failed: {status}");
    let _ = fs::remove_dir_all(&module_dir);
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    files
}

#[test]
fn kotlin_and_swift_sources_are_current() {
    let update = std::env::var_os("KINKO_UPDATE_BINDINGS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for language in ["kotlin", "swift"] {
        let fresh = temp_dir(language);
        generate(language, &fresh);
        let checked_in = manifest_dir().join(language);
        if update {
            let _ = fs::remove_dir_all(&checked_in);
            for file in files_under(&fresh) {
                let dest = checked_in.join(&file);
                fs::create_dir_all(dest.parent().expect("a parent")).expect("mkdir");
                fs::copy(fresh.join(&file), &dest).expect("copy generated source");
            }
        } else {
            let names: BTreeSet<_> = files_under(&fresh)
                .union(&files_under(&checked_in))
                .cloned()
                .collect();
            for name in names {
                let a = fs::read(fresh.join(&name)).ok();
                let b = fs::read(checked_in.join(&name)).ok();
                if a != b {
                    stale.push(format!("bindings/{language}/{}", name.display()));
                }
            }
        }
        let _ = fs::remove_dir_all(&fresh);
    }
    assert!(
        stale.is_empty(),
        "generated sources are stale: {}\nregenerate them with \
         KINKO_UPDATE_BINDINGS=1 cargo test -p kinko-ffi --test foreign kotlin_and_swift",
        stale.join(", ")
    );
}
