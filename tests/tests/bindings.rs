//! The bindings on real runtimes: the Python bindings (uniffi, library mode) drive the
//! customer's journey against the real agent process, with the KeyProtector and the listener
//! implemented in Python, and trigger each error kind.

use lanyard_test_support as support;

use std::path::Path;
use std::process::Command;

use support::{binary, AgentProcess, OrgClient};

/// Generates the bindings for `language` from the built library into `out`, as
/// `scripts/generate-bindings.sh` does (each crate's own uniffi.toml; Swift by uniffi's
/// Swift generator, for the one module map over both components' headers).
fn generate(language: &str, out: &Path) -> std::path::PathBuf {
    // The library and the generators, built as the README's script builds them (a no-op when
    // they are up to date).
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "lanyard-ffi", "--features", "bindgen"])
        .status()
        .unwrap();
    assert!(status.success(), "building lanyard-ffi");
    let library = binary("uniffi-bindgen").with_file_name("liblanyard_ffi.so");
    assert!(library.exists(), "{}", library.display());
    let status = if language == "swift" {
        // Built with uniffi-bindgen (the same feature) just above.
        Command::new(binary("uniffi-bindgen").with_file_name("uniffi-bindgen-swift"))
            .args(["--swift-sources", "--headers", "--modulemap"])
            .args(["--module-name", "LanyardWalletFFI"])
            .args(["--modulemap-filename", "LanyardWalletFFI.modulemap"])
            .arg(&library)
            .arg(out)
            .status()
            .unwrap()
    } else {
        Command::new(binary("uniffi-bindgen"))
            .args(["generate", "--library"])
            .arg(&library)
            .args(["--language", language, "--no-format", "--out-dir"])
            .arg(out)
            .status()
            .unwrap()
    };
    assert!(status.success(), "generating the {language} bindings");
    library
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drives_the_whole_journey_through_the_bindings() {
    let agent = AgentProcess::start(&[]);
    let acme = OrgClient::create(&agent, "Acme").await;
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
        kinds, 12,
        "every error kind but BadCredential (which needs a hostile issuer; tests/attacks.rs \
         provokes it through the Rust API), and the metadata address refused, from \
         Python:\n{stdout}"
    );
}

/// The workspace's `target/` folder.
fn target_dir() -> std::path::PathBuf {
    binary("uniffi-bindgen")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kotlin_on_the_jvm_drives_the_whole_journey_through_the_bindings() {
    let kotlinc = std::env::var("LANYARD_KOTLINC")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| target_dir().join("tools/node_modules/kotlin-compiler/bin/kotlinc"));
    let jna = Path::new("/usr/share/java/jna.jar");
    assert!(
        kotlinc.exists() && jna.exists(),
        "needs kotlinc ({}) and JNA ({}): .ci/run installs both \
         (npm install --prefix target/tools kotlin-compiler@2.4.20; apt install libjna-java)",
        kotlinc.display(),
        jna.display()
    );
    let kotlin_lib = kotlinc.parent().unwrap().parent().unwrap().join("lib");
    let coroutines = kotlin_lib.join("kotlinx-coroutines-core-jvm.jar");
    let stdlib = kotlin_lib.join("kotlin-stdlib.jar");

    let agent = AgentProcess::start(&[]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("kotlin");
    let library = generate("kotlin", &out);
    // The wallet's API, and wallet-core's records in their own package (WalletEvent).
    let bindings = [
        out.join("app/lanyard/wallet/lanyard_ffi.kt"),
        out.join("app/lanyard/wallet/core/wallet_core.kt"),
    ];
    let jar = work.path().join("journey.jar");
    let compiled = Command::new(&kotlinc)
        .args(&bindings)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bindings/Journey.kt"))
        // The Android sample's FCM logic (free of the Firebase SDK) compiles with the bindings.
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../android/sample/src/main/kotlin/app/lanyard/sample/PushWake.kt"
        ))
        .arg("-cp")
        .arg(format!("{}:{}", jna.display(), coroutines.display()))
        .arg("-d")
        .arg(&jar)
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "kotlinc failed:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let output = Command::new("java")
        .arg("-cp")
        .arg(format!(
            "{}:{}:{}:{}",
            jar.display(),
            jna.display(),
            coroutines.display(),
            stdlib.display()
        ))
        .arg(format!(
            "-Djna.library.path={}",
            library.parent().unwrap().display()
        ))
        .arg("JourneyKt")
        .args([&agent.url, &acme.key])
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Kotlin journey failed:\n{stdout}\n{stderr}"
    );
    for step in [
        "step connected Acme",
        "step stored",
        "step presented verified",
        "step removed 1",
        "step done",
    ] {
        assert!(stdout.contains(step), "no {step:?}:\n{stdout}");
    }
    assert_eq!(
        stdout.matches("step error ").count(),
        12,
        "every error kind but BadCredential, and the metadata address refused:\n{stdout}"
    );
}

/// No Swift compiler runs here: the Swift bindings are generated, their C headers are compiled
/// (syntax) with the system C compiler under the one module map, and the generated Swift is checked to declare what the
/// package's Keychain protector and the sample app call.
#[test]
fn swift_bindings_are_generated_and_their_header_compiles() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("swift");
    generate("swift", &out);
    // One Swift module: the wallet's API and the wallet-core records it uses (WalletEvent).
    let swift = std::fs::read_to_string(out.join("LanyardWallet.swift")).unwrap()
        + &std::fs::read_to_string(out.join("wallet_core.swift")).unwrap();
    // Compared without whitespace and doc comments: the generator's spacing and the docs (which
    // it writes between a case's parameters) are not part of the API.
    let swift_compact: String = without_doc_comments(&swift).split_whitespace().collect();
    let header = out.join("LanyardWalletFFI.h");
    let modulemap = std::fs::read_to_string(out.join("LanyardWalletFFI.modulemap")).unwrap();
    assert!(
        modulemap.contains("module LanyardWalletFFI")
            && modulemap.contains("header \"LanyardWalletFFI.h\"")
            && modulemap.contains("header \"wallet_coreFFI.h\""),
        "one module map over both headers: {modulemap}"
    );
    assert!(
        !out.join("wallet_coreFFI.modulemap").exists(),
        "a second module map would declare LanyardWalletFFI twice"
    );
    // Both headers in one translation unit, as the module map includes them. Clang's
    // nullability qualifiers are defined away for the system's GCC.
    let main = out.join("check.c");
    std::fs::write(
        &main,
        "#include \"LanyardWalletFFI.h\"\n#include \"wallet_coreFFI.h\"\n\
         int main(void) { return 0; }\n",
    )
    .unwrap();
    let compiled = Command::new("cc")
        .args(["-fsyntax-only", "-Wall", "-Werror"])
        .args(["-D_Nullable=", "-D_Nonnull=", "-D_Null_unspecified="])
        .arg("-I")
        .arg(header.parent().unwrap())
        .arg(&main)
        .output()
        .expect("a C compiler (cc)");
    assert!(
        compiled.status.success(),
        "the generated header does not compile:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    for declaration in [
        "public protocol KeyProtector",
        "func wrap(dataKey: Data) throws  -> Data",
        "func unwrap(wrapped: Data) throws  -> Data",
        "public protocol WalletListener",
        "func onEvent(event: WalletEvent)",
        "public static func `open`(dir: String, protector: KeyProtector) throws -> LanyardWallet",
        "func acceptInvitation(text: String) async throws  -> AcceptedInvitation",
        "func present(requestId: String, credentialIds: [String]) async throws",
        "func sync() async throws  -> SyncSummary",
        "func registerPush(platform: PushPlatform, token: String) async throws",
        "func unregisterPush() async throws",
        "public enum PushPlatform",
        "public enum WalletEvent",
        "case credentialsRemoved(templateId: String?, count: UInt64",
        "case Failed(reason: String",
        "case KeyProtector(message: String",
    ] {
        let compact: String = declaration.split_whitespace().collect();
        assert!(
            swift_compact.contains(&compact),
            "the Swift bindings lack {declaration:?}"
        );
    }
}

/// `swift` without its `/** ... */` doc comments.
fn without_doc_comments(swift: &str) -> String {
    let mut out = String::with_capacity(swift.len());
    let mut rest = swift;
    while let Some(start) = rest.find("/**") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("*/")
            .unwrap_or_else(|| panic!("an unclosed doc comment in the Swift bindings"));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}
