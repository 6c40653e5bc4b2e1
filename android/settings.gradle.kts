// The Android side of Lanyard: the `lanyard-wallet` library (generated Kotlin bindings, JNA,
// the Rust library for four ABIs, an Android Keystore KeyProtector) and a Compose sample app.
pluginManagement {
    repositories { google(); mavenCentral(); gradlePluginPortal() }
}
dependencyResolutionManagement {
    repositories { google(); mavenCentral() }
}
rootProject.name = "lanyard-android"
include(":lanyard-wallet", ":sample")
