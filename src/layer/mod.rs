//! Turning a list of changes into an OCI layer blob in one streaming pass: tar (`tar.rs`)
//! → sha256 (diff ID) → compression (`compress.rs`) → sha256 (blob digest) → the caller's
//! writer (the store's `BlobWriter`). Nothing here buffers the layer or writes it twice.

pub mod compress;
