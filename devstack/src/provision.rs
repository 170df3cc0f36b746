//! Resource provisioning.
