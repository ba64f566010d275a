#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| containerd_shim_runsc::fuzz::spec_rewrite(data));
