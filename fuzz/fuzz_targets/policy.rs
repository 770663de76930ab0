//! `liftoff::fuzzing::policy` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liftoff::fuzzing::policy(data));
