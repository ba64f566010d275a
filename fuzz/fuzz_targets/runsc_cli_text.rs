#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| runsc::fuzz::cli_text(data));
