#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| runsc::fuzz::control_reply(data));
