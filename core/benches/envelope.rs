//! Seal and open throughput per suite, in memory (no disk), 16 MiB per iteration: opening as
//! a stream (which keeps each chunk's ciphertext to name a truncation) and as seekable input
//! of known size (as `kinko open FILE` and the server do); and sealing 1 KiB.
//! `cargo bench -p kinko-core --bench envelope`
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::io::{self, Cursor};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kinko_core::envelope::{self, Keyring, Opener, Recipients, SealOptions, Suite};
use kinko_core::keys::Identity;

const LEN: usize = 16 << 20;

fn bench(c: &mut Criterion) {
    let identity = Identity::from_secret_bytes([7; 32]);
    let recipients = Recipients::new().x25519(identity.to_public());
    let keyring = Keyring::new().identity(identity);
    let plain = vec![0x5au8; LEN];
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(20);
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        let options = || SealOptions {
            suite,
            ..SealOptions::default()
        };
        group.bench_function(format!("seal/{suite}"), |b| {
            b.iter(|| envelope::seal(black_box(&plain[..]), io::sink(), &recipients, options()))
        });
        let sealed = envelope::seal(&plain[..], Vec::new(), &recipients, options()).unwrap();
        group.bench_function(format!("open/{suite}"), |b| {
            b.iter(|| envelope::open(black_box(&sealed[..]), io::sink(), &keyring).unwrap())
        });
        group.bench_function(format!("open-seekable/{suite}"), |b| {
            b.iter(|| {
                let mut opener =
                    Opener::new_seekable(Cursor::new(black_box(&sealed[..])), &keyring).unwrap();
                io::copy(&mut opener, &mut io::sink()).unwrap()
            })
        });
    }
    group.throughput(Throughput::Bytes(1024));
    group.bench_function("seal/1KiB", |b| {
        b.iter(|| {
            envelope::seal(
                black_box(&plain[..1024]),
                io::sink(),
                &recipients,
                SealOptions::default(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
