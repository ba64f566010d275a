#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| runsc::fuzz::exec_process(data));
