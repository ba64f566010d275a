//! Docker libcontainerd client sequence (to be written).
