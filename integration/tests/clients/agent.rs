//! agent-sandbox containerd service workflows (to be written).
