//! `liftoff::fuzzing::annotations` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liftoff::fuzzing::annotations(data));
