//! Links the plugin with `-z nodelete`: its I/O thread runs for the life of
//! the process, so a host's dlclose() must never unmap the code under it.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
}
