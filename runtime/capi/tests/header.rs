//! include/linrt.h is cbindgen's output for this crate: this test fails while the
//! committed header is stale, and `LINRT_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_what_cbindgen_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings =
        cbindgen::Builder::new().with_crate(dir).with_config(config).generate().expect("cbindgen parses the crate");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = dir.join("include/linrt.h");
    if std::env::var_os("LINRT_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/linrt.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "runtime/capi/include/linrt.h is stale: regenerate it with `LINRT_BLESS=1 cargo test -p linrt-capi --test header`"
    );
}
