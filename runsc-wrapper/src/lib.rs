//! placeholder: see monitor
pub mod monitor;
pub use monitor::{DefaultMonitor, Exit, ExitReceiver, LogMonitor, ProcessMonitor};
