//! placeholder: the provisioning and release state machines (pure transitions).
