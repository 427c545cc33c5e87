#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kinko_core::fuzzing::audit_export(data));
