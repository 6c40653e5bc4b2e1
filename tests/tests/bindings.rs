//! The bindings on real runtimes: the Python bindings (uniffi, library mode) drive the
//! customer's journey against the real agent process, with the KeyProtector and the listener
//! implemented in Python, and trigger each error kind.

mod support;

use std::path::Path;
use std::process::Command;

use support::{binary, AgentProcess, Org};

/// Generates the bindings for `language` from the built library into `out`.
fn generate(language: &str, out: &Path) -> std::path::PathBuf {
    // The library and the generator, built as the README's script builds them (a no-op when
    // they are up to date).
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "lanyard-ffi", "--features", "bindgen"])
        .status()
        .unwrap();
    assert!(status.success(), "building lanyard-ffi");
    let library = binary("uniffi-bindgen").with_file_name("liblanyard_ffi.so");
    assert!(library.exists(), "{}", library.display());
    let status = Command::new(binary("uniffi-bindgen"))
        .args(["generate", "--library"])
        .arg(&library)
        .args(["--language", language, "--no-format", "--out-dir"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "generating the {language} bindings");
    library
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drives_the_whole_journey_through_the_bindings() {
    let agent = AgentProcess::start(&[]);
    let acme = Org::create(&agent, "Acme").await;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("python");
    let library = generate("python", &out);
    // The generated module loads the library from its own folder.
    std::fs::copy(&library, out.join("liblanyard_ffi.so")).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bindings/journey.py");
    let output = Command::new("python3")
        .arg(script)
        .args([&agent.url, &acme.key])
        .arg(work.path())
        .env("PYTHONPATH", &out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python journey failed:\n{stdout}\n{stderr}"
    );
    for step in ["connected", "stored", "presented", "removed", "done"] {
        assert!(
            stdout.contains(&format!("\"step\": \"{step}\"")),
            "no {step} step:\n{stdout}"
        );
    }
    let kinds = stdout.matches("\"step\": \"error\"").count();
    assert_eq!(
        kinds, 9,
        "every error kind reachable from Python:\n{stdout}"
    );
}
