//! Attacks: nfs (see SECURITY.md).
