//! X25519 identities and recipients in age's encodings.
