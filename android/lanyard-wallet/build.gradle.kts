// The library module: the uniffi Kotlin bindings (generated into build/generated/uniffi by
// build-rust.sh), JNA, and the Rust library for arm64-v8a, armeabi-v7a, x86_64 and x86.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "app.lanyard.wallet"
    compileSdk = 35
    defaultConfig { minSdk = 26 }
    sourceSets["main"].java.srcDir("build/generated/uniffi")
    sourceSets["main"].jniLibs.srcDir("build/generated/jniLibs")
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation("net.java.dev.jna:jna:5.15.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}

val buildRust by tasks.registering(Exec::class) {
    description = "Builds the Rust library for the four ABIs and generates the Kotlin bindings"
    commandLine("../build-rust.sh")
}
tasks.named("preBuild") { dependsOn(buildRust) }
